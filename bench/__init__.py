"""Benchmarks, never tests: python -m bench.iteration | bench.ops | bench.scaling (bench/RESULTS.md)."""
