"""Tests that pin down the listing mechanisms mutation testing found unguarded (see docs/mutation.md)."""
