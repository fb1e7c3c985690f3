"""Benchmarks, never tests: python -m bench.iteration | bench.ops | bench.scaling, bench.gpu_proof (docs/performance.md, docs/gpu.md)."""
