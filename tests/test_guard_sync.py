"""Tests of the sync mechanisms that mutation testing found unguarded."""
