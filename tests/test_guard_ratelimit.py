"""Tests of the ratelimit mechanisms that mutation testing found unguarded."""
