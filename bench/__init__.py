"""Benchmarks (not tests): run with `python -m bench.api_bench`."""
