"""Every kernels/*.cu compiles with NVRTC, for the GPUs we target, with the engine's options.

No GPU is needed: NVRTC is a library (the nvidia-cuda-nvrtc wheel) that turns CUDA C into PTX.
The PTX must also declare, under its plain C name, every entry point that engine/ops launches,
since ``RawModule.get_function`` looks kernels up by that name. Without CuPy (a plain CPU
install) these tests skip, saying so; with CuPy but no loadable NVRTC they fail: the test extra
installs both.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import kernels
from engine import backend

ARCHS = ("sm_80", "sm_90")
OPS_DIR = Path(backend.__file__).resolve().parent / "ops"

# What engine/ops launches, as (source file, entry point without the dtype suffix).
LAUNCHED = {
    ("conv3x3", "conv3x3_im2col"),
    ("conv3x3", "conv3x3_im2col_relu_bwd"),
    ("relu", "relu_fwd"),
    ("relu", "relu_bwd"),
    ("pool", "avgpool2_fwd"),
    ("pool", "avgpool2_bwd"),
    ("pool", "maxpool2_fwd"),
    ("pool", "maxpool2_bwd"),
    ("tv", "tv_fwd_bwd"),
    ("winograd", "winograd2_input"),
    ("winograd", "winograd2_input_relu_bwd"),
    ("winograd", "winograd2_output"),
    ("winograd", "winograd4_input"),
    ("winograd", "winograd4_input_relu_bwd"),
    ("winograd", "winograd4_output"),
}


def nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError:
        pytest.skip("CuPy is not installed (a CPU-only install): pip install '.[test]' to compile "
                    "kernels/*.cu with NVRTC")

    nvrtc.getVersion()  # raises here if the NVRTC shared library cannot be found
    return nvrtc


def compile_ptx(name: str, arch: str) -> str:
    """PTX of kernels/<name>.cu; on failure the assertion message carries NVRTC's log."""
    lib = nvrtc()
    prog = lib.createProgram(kernels.source(name), f"{name}.cu", [], [])
    try:
        try:
            lib.compileProgram(prog, [f"--gpu-architecture={arch}", *backend.NVRTC_OPTIONS])
        except lib.NVRTCError as exc:
            pytest.fail(f"NVRTC could not compile kernels/{name}.cu for {arch}: {exc}\n{lib.getProgramLog(prog)}")
        ptx = lib.getPTX(prog)
    finally:
        lib.destroyProgram(prog)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


def launched_by_engine() -> set[tuple[str, str]]:
    """Every ``backend.kernel("<file>", "<entry>", ...)`` call written in engine/ops/*.py."""
    found = set()
    for path in OPS_DIR.glob("*.py"):
        found |= set(re.findall(r'backend\.kernel\(\s*"(\w+)",\s*"(\w+)"', path.read_text()))
    return found


def test_nvrtc_loads():
    major, minor = nvrtc().getVersion()
    assert major >= 11, f"NVRTC {major}.{minor} is too old"


def test_every_launch_in_engine_is_listed():
    # keeps LAUNCHED honest: a new backend.kernel(...) call in engine/ops must appear there
    assert launched_by_engine() == LAUNCHED


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", kernels.names())
def test_compiles(name, arch):
    ptx = compile_ptx(name, arch)
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    declared = set(re.findall(r"__global__\s+void\s+(\w+)", kernels.source(name)))
    # a plain name in the PTX means C linkage; a C++-mangled one would be _Z...
    assert declared <= entries, f"entry points without C linkage: {sorted(declared - entries)}"
    for file, entry in LAUNCHED:
        if file == name:
            for suffix in ("f32", "f64"):
                assert f"{entry}_{suffix}" in entries, f"kernels/{name}.cu lacks {entry}_{suffix} ({arch})"


def test_every_launched_file_exists():
    assert {file for file, _ in LAUNCHED} <= set(kernels.names())


@pytest.mark.parametrize("arch", ARCHS)
def test_im2col_indexes_without_64_bit_division(arch):
    # its 2-D grid leaves one 32-bit division per element; a 64-bit one is a slow software loop
    ops = set(re.findall(r"\b((?:div|rem)\.[su](?:32|64))\b", compile_ptx("conv3x3", arch)))
    assert ops and not {op for op in ops if op.endswith("64")}, sorted(ops)
