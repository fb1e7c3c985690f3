"""Benchmarks, never tests (docs/performance.md, docs/gpu.md, docs/levers.md).

    iteration.py       one evaluation against PyTorch: time, memory, the optimiser's own cost
    ops.py             every op at every VGG-19 shape, GFLOP/s
    layers.py          each Winograd conv's time inside one evaluation, per memory mode
    scaling.py         one evaluation from 64 to 1024 px: time and peak memory
    optimizers.py      evaluation per layer; scipy's L-BFGS-B against the device L-BFGS
    gpu_proof.py       the GPU path proven in one command, one report
    texture_levers.py  texture options judged on held-out crops
    style_levers.py    style options judged on a held-out style half
    _common.py         shared: machine line, A/B timing, peak memory, the two evaluations
    _memory.py         one evaluation's peak memory in a fresh process (run by _common)
"""
