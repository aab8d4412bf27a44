"""Tests that pin down the ratelimit mechanisms mutation testing found unguarded (see docs/mutation.md)."""
