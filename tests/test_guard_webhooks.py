"""Tests that pin down the webhooks mechanisms mutation testing found unguarded (see docs/mutation.md)."""
