"""CUDA C sources of the raw kernels, compiled with NVRTC at first use (see engine.backend).

    *.cu      the raw kernels, one file per op family (``source``, ``names``)
    fused.py  the fused CuPy ElementwiseKernel / ReductionKernel definitions (``backend.fused``)
"""
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent


def source(name: str) -> str:
    """Return the text of ``kernels/<name>.cu``."""
    return (KERNEL_DIR / f"{name}.cu").read_text()


def names() -> list[str]:
    """Every kernel source file, without the ``.cu`` suffix."""
    return sorted(p.stem for p in KERNEL_DIR.glob("*.cu"))
