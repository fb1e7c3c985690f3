"""Benchmarks: how fast the engine is (python -m bench.bench_kernels)."""
