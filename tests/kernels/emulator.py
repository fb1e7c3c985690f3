"""Run the raw CUDA kernels of ``kernels/*.cu`` on the CPU, one (block, thread) at a time.

g++ compiles the unchanged source with ``cuda_emu.h`` force-included (it defines
``__global__``, ``blockIdx``, ``threadIdx``, ...), into a shared library cached under
``tests/_emu_build/`` by a hash of the source. Each ``extern "C" __global__`` entry point is then
called through ctypes once per thread of the launch, exactly as the engine would launch it
through CuPy: ``module("pool").get_function("avgpool2_fwd_f32")(grid, block, args)``.

A launch checks what a GPU would not tell you:
  * every argument against the kernel's C signature: dtype of pointed-to arrays, C-contiguity,
    and the exact width of integers (``np.int32`` for ``int``, ``np.int64`` for ``long long``,
    as CuPy passes them);
  * that no thread wrote outside any array (64 guard bytes on either side of each one).

Threads run one after another, so kernels using ``__shared__`` or ``__syncthreads()`` cannot be
emulated (the header leaves them undefined: such a kernel fails to build here).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import os
import re
import subprocess
from pathlib import Path

import numpy as np

import kernels

HEADER = Path(__file__).resolve().with_name("cuda_emu.h")
BUILD_DIR = Path(__file__).resolve().parents[1] / "_emu_build"
CXX = os.environ.get("CXX", "g++")
FLAGS = ("-O1", "-shared", "-fPIC", "-std=c++14", "-Wall")
GUARD = 64  # bytes of canary either side of every array; a multiple of 16 keeps alignment
CANARY = 0xA5

POINTEE = {"float": np.float32, "double": np.float64, "unsigned char": np.uint8}
SCALAR = {"int": (np.int32, ctypes.c_int), "long long": (np.int64, ctypes.c_longlong)}

_GLOBAL = re.compile(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)")


class Param:
    """One kernel parameter, parsed from C: ``const float* __restrict__ x`` -> float, pointer."""

    def __init__(self, decl: str):
        words = decl.replace("*", " * ").split()
        self.name = words[-1]
        self.const = "const" in words
        self.pointer = "*" in words
        self.ctype = " ".join(w for w in words[:-1] if w not in ("const", "__restrict__", "*"))
        if self.ctype not in (POINTEE if self.pointer else SCALAR):
            raise TypeError(f"emulator does not know parameter type {decl!r}")


def signatures(source: str) -> dict[str, list[Param]]:
    """Every ``__global__`` function in ``source``: name -> its parameters."""
    return {name: [Param(d) for d in params.split(",")] for name, params in _GLOBAL.findall(source)}


def build(source: str, tag: str) -> Path:
    """Compile ``source`` with g++ (once per distinct source); the shared library's path."""
    key = hashlib.sha256("\0".join([source, HEADER.read_text(), CXX, *FLAGS]).encode()).hexdigest()[:16]
    lib = BUILD_DIR / f"{tag}-{key}.so"
    if lib.exists():
        return lib
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    src = BUILD_DIR / f"{tag}-{key}.cu"
    src.write_text(source)
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    cmd = [CXX, *FLAGS, "-include", str(HEADER), "-x", "c++", str(src), "-o", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"g++ could not build {tag} for the emulator:\n{' '.join(cmd)}\n{done.stderr}")
    os.replace(tmp, lib)  # atomic: a parallel test run never loads a half-written library
    return lib


class Module:
    """A kernel source built for the CPU; the stand-in for ``cupy.RawModule``."""

    def __init__(self, source: str, tag: str):
        self.lib = ctypes.CDLL(str(build(source, tag)))
        self.signatures = signatures(source)
        self._set = self.lib.emu_set
        self._set.argtypes = [ctypes.c_uint] * 12

    def get_function(self, name: str) -> "Kernel":
        if name not in self.signatures:
            raise KeyError(f"no __global__ function {name!r} in the source")
        try:
            fn = getattr(self.lib, name)  # found only if the name has C linkage
        except AttributeError:
            raise KeyError(f"{name!r} is not an extern \"C\" symbol of the built library") from None
        fn.restype = None
        return Kernel(self, name, fn, self.signatures[name])


@functools.lru_cache(maxsize=None)
def module(name: str) -> Module:
    """``kernels/<name>.cu``, built for the emulator."""
    return Module(kernels.source(name), name)


def _dim3(d) -> tuple[int, int, int]:
    d = tuple(int(v) for v in d)
    return d + (1,) * (3 - len(d))


class Kernel:
    """One entry point; call it like a CuPy RawKernel: ``kern(grid, block, args)``."""

    def __init__(self, mod: Module, name: str, fn, params: list[Param]):
        self.mod, self.name, self.fn, self.params = mod, name, fn, params

    def _convert(self, p: Param, value):
        """The ctypes argument for ``value``, and its guarded buffer if it is an array."""
        where = f"{self.name}: argument {p.name!r}"
        if p.pointer:
            want = np.dtype(POINTEE[p.ctype])
            if not isinstance(value, np.ndarray) or value.dtype != want:
                raise TypeError(f"{where} must be a {want} array ({p.ctype}*), got {getattr(value, 'dtype', type(value))}")
            if not value.flags.c_contiguous:
                raise TypeError(f"{where} is not C-contiguous: the kernel would read the wrong elements")
            buf = np.full(value.nbytes + 2 * GUARD, CANARY, dtype=np.uint8)
            buf[GUARD:GUARD + value.nbytes] = value.reshape(-1).view(np.uint8)
            return ctypes.c_void_p(buf.ctypes.data + GUARD), buf
        want, ctype = SCALAR[p.ctype]
        if type(value) is not want:
            raise TypeError(f"{where} must be {want.__name__} ({p.ctype}), got {type(value).__name__}")
        return ctype(int(value)), None

    def __call__(self, grid, block, args) -> None:
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        converted = [self._convert(p, a) for p, a in zip(self.params, args)]
        grid, block = _dim3(grid), _dim3(block)
        cargs = [c for c, _ in converted]
        for bz, by, bx in itertools.product(*(range(g) for g in reversed(grid))):
            for tz, ty, tx in itertools.product(*(range(b) for b in reversed(block))):
                self.mod._set(bx, by, bz, tx, ty, tz, *block, *grid)
                self.fn(*cargs)
        for p, value, (_, buf) in zip(self.params, args, converted):
            if buf is None:
                continue
            if (buf[:GUARD] != CANARY).any() or (buf[GUARD + value.nbytes:] != CANARY).any():
                raise AssertionError(f"{self.name} wrote outside argument {p.name!r}")
            if not p.const:
                value.reshape(-1).view(np.uint8)[:] = buf[GUARD:GUARD + value.nbytes]
