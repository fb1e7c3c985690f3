"""Verify every analytic gradient against central finite differences, in float64.

    ranvgg gradcheck [--device cpu|gpu|auto] [--only NAME]

Checks every op (conv3x3, relu, pooling, fc, gram), every loss (content, Gram, total
variation), the autograd's accumulation, the style objective and the whole network (average
and max pooling, and through the fc layers). Prints a table and exits 1 if any check fails.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

from engine import backend, gradcheck
from engine.errors import UserError

from .cli.command import _Parser
from .cli.console import guarded_stdout


def main(argv=None) -> int:
    with guarded_stdout():  # a closed or full stdout (| head, > /dev/full) never raises
        return _main(argv)


def _main(argv=None) -> int:
    first, _, rest = __doc__.strip().partition("\n\n")
    ap = _Parser(prog="ranvgg gradcheck", description=first, epilog=rest,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=backend.DEVICES, help="where to run the checks (default: cpu)")
    ap.add_argument("--only", metavar="NAME", help="run only the checks whose name contains NAME")
    ap.add_argument("--tolerance", type=float, default=gradcheck.TOLERANCE,
                    help=f"largest accepted relative error (default: {gradcheck.TOLERANCE:g})")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed option (already reported in one line)
        return exc.code if isinstance(exc.code, int) else 2
    if not (math.isfinite(args.tolerance) and args.tolerance > 0):
        print(f"error: --tolerance must be a positive number, got {args.tolerance!r}", file=sys.stderr)
        return 2
    try:
        device = backend.resolve_device(args.device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    checks = [c for c in gradcheck.standard_checks() if not args.only or args.only in c.name]
    if not checks:
        print(f"error: no check matches {args.only!r}", file=sys.stderr)
        return 2
    print(f"gradient check on {device}, float64, tolerance {args.tolerance:g}")
    print(f"{'check':34s} {'shape':16s} {'rel. error':>10s} {'time':>7s}  result")
    failed = 0
    for chk in checks:
        t0 = time.perf_counter()
        err = chk.run(device)
        ok = err < args.tolerance
        failed += not ok
        shape = "x".join(map(str, chk.shape))
        print(f"{chk.name:34s} {shape:16s} {err:10.2e} {time.perf_counter() - t0:6.2f}s  {'pass' if ok else 'FAIL'}",
              flush=True)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
