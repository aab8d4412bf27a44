"""Tests that pin down the sync mechanisms mutation testing found unguarded (see docs/mutation.md)."""
