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

The fused CuPy kernels of ``kernels/fused.py`` are emulated the same way (``fused``): each
definition is written out as CUDA C in the scope CuPy gives its text (``fused_source``), built by
g++ and run by one thread over every element, in CuPy's place.
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



# ----------------------------------------------------------------------------- fused CuPy kernels

CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
         np.dtype(np.int32): "int", np.dtype(np.int64): "long long"}
NAMED = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64}


class FusedParam:
    """One parameter of a CuPy kernel definition: ``T x`` (T: a type placeholder) or ``float64 k``."""

    def __init__(self, decl: str):
        words = decl.split()
        if len(words) != 2:
            raise TypeError(f"emulator knows '<type> <name>' parameters only, got {decl!r}")
        self.type, self.name = words
        self.placeholder = len(self.type) == 1 and self.type.isupper()
        if not self.placeholder and self.type not in NAMED:
            raise TypeError(f"emulator does not know the type of {decl!r}")

    def ctype(self) -> str:
        return self.type if self.placeholder else CTYPE[np.dtype(NAMED[self.type])]


def fused_params(name: str) -> tuple[list[FusedParam], list[FusedParam]]:
    from kernels.fused import SPECS

    spec = SPECS[name]
    return [FusedParam(d) for d in spec["in_params"].split(",")], [FusedParam(d) for d in spec["out_params"].split(",")]


def fused_source(name: str, types: dict, scalars=frozenset()) -> str:
    """CUDA C for ``kernels/fused.py``'s definition ``name``, placeholders bound to ``types``
    ({"T": np.float32}), the inputs named in ``scalars`` given as scalars: one ``extern "C"
    __global__`` function whose single thread walks the ``_n`` elements in order, each argument
    reached through ``_args``. The definition's text sits in the scope CuPy gives it: an input
    array's name is the element's value, an output's a reference to the element, a scalar its
    value; a reduction's ``REDUCE(a, b)`` and ``POST_MAP(a)`` are macros, and after the loop only
    the scalars and the outputs are in scope, as in CuPy. g++ builds it for the emulator; NVRTC
    compiles it in the compile test."""
    from kernels.fused import ELEMENTWISE, SPECS

    spec = SPECS[name]
    ins, outs = fused_params(name)
    lines = [f"typedef {CTYPE[np.dtype(t)]} {p};" for p, t in sorted(types.items())]

    def bind(k, p, out=False, at="_i"):
        at = "0" if p.name in scalars else at
        if out:
            return f"{p.ctype()}& {p.name} = (({p.ctype()}*)_args[{k}])[{at}];"
        return f"const {p.ctype()} {p.name} = ((const {p.ctype()}*)_args[{k}])[{at}];"

    inputs = [bind(k, p) for k, p in enumerate(ins)]
    outputs = [bind(len(ins) + k, p, out=True) for k, p in enumerate(outs)]
    head = f'extern "C" __global__ void emu_{name}(long long _n, void** _args) {{'
    if spec["kind"] == ELEMENTWISE:
        lines += [head, "    for (long long _i = 0; _i < _n; ++_i) {",
                  *(f"        {b}" for b in inputs + outputs), f"        {spec['operation']};", "    }", "}"]
    else:
        lines += [f"#define REDUCE(a, b) ({spec['reduce_expr']})", f"#define POST_MAP(a) ({spec['post_map_expr']})",
                  f"typedef {spec['reduce_type']} _type_reduce;", head,
                  f"    _type_reduce _s = _type_reduce({spec['identity']});",
                  "    for (long long _i = 0; _i < _n; ++_i) {",
                  *(f"        {b}" for b in inputs),
                  f"        _type_reduce _a = static_cast<_type_reduce>({spec['map_expr']});",
                  "        _s = REDUCE(_s, _a);", "    }",
                  *(f"    {bind(k, p)}" for k, p in enumerate(ins) if p.name in scalars),
                  *(f"    {bind(len(ins) + k, p, out=True, at='0')}" for k, p in enumerate(outs)),
                  "    POST_MAP(_s);", "}"]
    return "\n".join(lines) + "\n"


class FusedKernel:
    """The stand-in for ``cupy.ElementwiseKernel`` / ``cupy.ReductionKernel`` (a reduction over
    all elements, the only kind the engine uses): called with the inputs, it returns the output
    (a new array of the broadcast shape, or 0-d for a reduction).

    Like CuPy: a placeholder takes the dtype of the first array given for it and every other
    array for it must have that dtype (stricter than CuPy: a named type must match exactly, no
    casting); 0-d and smaller arrays broadcast; Python numbers are scalars of the declared type."""

    def __init__(self, name: str):
        from kernels.fused import SPECS

        self.name, self.spec = name, SPECS[name]
        self.ins, self.outs = fused_params(name)

    def __call__(self, *args):
        if len(args) != len(self.ins):
            raise TypeError(f"{self.name} takes {len(self.ins)} inputs, got {len(args)}")
        types: dict = {}
        for p, a in zip(self.ins, args):
            if isinstance(a, np.ndarray):
                if p.placeholder:
                    want = types.setdefault(p.type, a.dtype.type)
                else:
                    want = NAMED[p.type]
                if a.dtype != want:
                    raise TypeError(f"{self.name}: argument {p.name!r} is {a.dtype}, {p.type} is {np.dtype(want)}")
        scalars = frozenset(p.name for p, a in zip(self.ins, args) if not isinstance(a, np.ndarray))
        if any(p.placeholder for p in self.ins if p.name in scalars):
            raise TypeError(f"{self.name}: a scalar for a placeholder type is not emulated")
        if any(p.placeholder and p.type not in types for p in self.outs):
            raise TypeError(f"{self.name}: no input array gives an output's type")
        shape = np.broadcast_shapes(*(a.shape for a in args if isinstance(a, np.ndarray)))
        n = int(np.prod(shape))
        bufs = [np.asarray(a, dtype=types.get(p.type, NAMED.get(p.type))).reshape(1) if p.name in scalars
                else np.ascontiguousarray(np.broadcast_to(a, shape)) for p, a in zip(self.ins, args)]
        reduction = self.spec["kind"] != "elementwise"
        outs = [np.empty(() if reduction else shape, dtype=types.get(p.type, NAMED.get(p.type))) for p in self.outs]
        fn = getattr(_library(fused_source(self.name, types, scalars), f"fused-{self.name}"), f"emu_{self.name}")
        fn.restype = None
        ptrs = (ctypes.c_void_p * (len(bufs) + len(outs)))(*(b.ctypes.data for b in bufs + outs))
        fn(ctypes.c_longlong(n), ptrs)
        return outs[0] if len(outs) == 1 else tuple(outs)


@functools.lru_cache(maxsize=None)
def _library(source: str, tag: str):
    return ctypes.CDLL(str(build(source, tag)))


@functools.lru_cache(maxsize=None)
def fused(name: str) -> FusedKernel:
    """``kernels/fused.py``'s definition ``name``, built for the emulator; stands in for
    ``engine.backend.make_fused``."""
    return FusedKernel(name)
