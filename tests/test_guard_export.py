"""Tests of the export mechanisms that mutation testing found unguarded."""
