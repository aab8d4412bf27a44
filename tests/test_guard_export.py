"""Tests that pin down the export mechanisms mutation testing found unguarded (see docs/mutation.md)."""
