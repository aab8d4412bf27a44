"""Tests of the listing mechanisms that mutation testing found unguarded."""
