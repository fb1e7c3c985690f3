"""Fused elementwise steps of the GPU path, as CuPy ``ElementwiseKernel`` / ``ReductionKernel``
definitions: a few lines of CUDA C each, compiled by CuPy at first use (``engine.backend.fused``).

Each replaces a chain of CuPy array operations (one kernel launch and often one temporary the
size of the data per operation) by one launch. The NumPy path keeps the array operations; the
two are compared on the CPU by ``tests/kernels`` (the emulator builds each definition with g++,
and NVRTC compiles it for sm_80 and sm_90).

Conventions (CuPy's): ``T`` is the dtype of the first array given for it; an input name is the
element's value, an output name a reference to the element; a ``float64`` scalar is passed as a
Python float. In a reduction, ``a`` and ``b`` are the accumulators of ``reduce_expr`` and ``a``
the total in ``post_map_expr``.
"""
from __future__ import annotations

ELEMENTWISE, REDUCTION = "elementwise", "reduction"

SPECS = {
    # the content loss (engine/ops/losses.py): w / (2NM) * sum((F - F0)^2), summed in float64
    "ranvgg_content_value": dict(
        kind=REDUCTION, in_params="T f, T t, float64 k", out_params="T y",
        map_expr="(double)(f - t) * (double)(f - t)", reduce_expr="a + b", post_map_expr="y = (T)(a * k)",
        identity="0", reduce_type="double"),
    # ... and its gradient: (F - F0) * (g * w / (NM)), g the 0-d gradient arriving from above
    "ranvgg_content_grad": dict(
        kind=ELEMENTWISE, in_params="T f, T t, T g, float64 k", out_params="T gx",
        operation="gx = (f - t) * (g * (T)k)"),
    # the Gram loss (engine/ops/losses.py): w / (4 N^2 M^2) * sum(dG^2), summed in float64
    "ranvgg_sum_squares": dict(
        kind=REDUCTION, in_params="T d, float64 k", out_params="T y",
        map_expr="(double)d * (double)d", reduce_expr="a + b", post_map_expr="y = (T)(a * k)",
        identity="0", reduce_type="double"),
    # device L-BFGS (engine/optim/device_lbfgs.py): a . b in float64, no temporary
    "ranvgg_dot": dict(
        kind=REDUCTION, in_params="T a_, T b_", out_params="float64 y",
        map_expr="(double)a_ * (double)b_", reduce_expr="a + b", post_map_expr="y = a",
        identity="0", reduce_type="double"),
    # ... d with the components that push a variable on its bound out of the box zeroed
    "ranvgg_keep_inside": dict(
        kind=ELEMENTWISE, in_params="T d, T x, T lo, T hi", out_params="T out",
        operation="out = ((x <= lo && d < 0) || (x >= hi && d > 0)) ? (T)0 : d"),
    # ... the trial point clip(x + t d, lo, hi), rounded to float32 when the objective is float32
    "ranvgg_trial_point": dict(
        kind=ELEMENTWISE, in_params="T x, T d, T lo, T hi, float64 t, int32 single", out_params="T p",
        operation="T q = x + (T)t * d; q = q < lo ? lo : (q > hi ? hi : q); p = single ? (T)(float)q : q"),
}
