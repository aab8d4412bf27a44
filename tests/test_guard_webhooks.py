"""Tests of the webhooks mechanisms that mutation testing found unguarded."""
