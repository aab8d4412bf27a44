"""Benchmarks for mettl-async: kept out of the test run, each prints ratios measured in one run."""
