"""The architecture tables every module reads: VGG's blocks, layer names, shapes, poolings.

Simonyan & Zisserman's configurations A, B, D, E (VGG-11, -13, -16, -19) differ only in how many
3x3 convs each of the five blocks has; every block ends in a 2x2 pooling, so the names (``convB_I``,
``reluB_I``, ``poolB``, then ``fc6 relu6 fc7 relu7 fc8``) and the fc input size are shared. The
module constants are VGG-19's (the default); code that works for any depth calls
``layer_table(arch)``.

    LAYER_NAMES                    every layer name of VGG-19 in forward order
    layer_table("vgg11")           [(name, kind, owner)], [(conv name, (Cout, Cin, 3, 3))]
    poolings_before("relu3_1")     2: the 2x2 poolings between the input and that layer
    map_shape("pool3", 128, 96)    (256, 16, 12): (C, h, w) of a layer for an h x w input
"""
from __future__ import annotations

from .errors import UserError

# Output channels of each conv, per block; five 2x2 poolings in every architecture, so the
# names (convB_I, poolB) and the fc input size are shared, only the number of convs differs.
ARCHS = {
    "vgg11": ((64,), (128,), (256,) * 2, (512,) * 2, (512,) * 2),
    "vgg13": ((64,) * 2, (128,) * 2, (256,) * 2, (512,) * 2, (512,) * 2),
    "vgg16": ((64,) * 2, (128,) * 2, (256,) * 3, (512,) * 3, (512,) * 3),
    "vgg19": ((64,) * 2, (128,) * 2, (256,) * 4, (512,) * 4, (512,) * 4),
}
DEFAULT_ARCH = "vgg19"
BLOCKS = ARCHS[DEFAULT_ARCH]
FC_SIZES = (("fc6", 4096), ("fc7", 4096), ("fc8", 1000))
POOLING = ("avg", "max")
DEFAULT_SIGMA = 0.015
# how a random net's conv weights are drawn (engine.vgg.draw_conv); gaussian: N(0, sigma^2)
INITS = ("gaussian", "he", "orthogonal", "zero-mean-first")
DEFAULT_INIT = "gaussian"


def _table(blocks=BLOCKS):
    """[(name, kind, conv/fc name it belongs to)] in forward order, and the conv shapes."""
    table, convs = [], []
    cin = 3
    for b, block in enumerate(blocks, start=1):
        for i, cout in enumerate(block, start=1):
            conv = f"conv{b}_{i}"
            convs.append((conv, (cout, cin, 3, 3)))
            table += [(conv, "conv", conv), (f"relu{b}_{i}", "relu", conv)]
            cin = cout
        table.append((f"pool{b}", "pool", None))
    for i, (name, _) in enumerate(FC_SIZES):
        table.append((name, "fc", name))
        if i < 2:
            table.append((f"relu{6 + i}", "relu", name))
    return table, convs


LAYERS, CONV_SHAPES = _table()
LAYER_NAMES = tuple(name for name, _, _ in LAYERS)
_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
FC_LAYERS = tuple(name for name, _, owner in LAYERS if owner in ("fc6", "fc7", "fc8"))


def layer_table(arch: str = DEFAULT_ARCH):
    """([(name, kind, owner)] in forward order, [(conv name, (Cout, Cin, 3, 3))]) of ``arch``;
    kind is conv, relu, pool or fc, owner the conv/fc whose weights a conv/relu/fc layer uses."""
    return _table(ARCHS[check_arch(arch)])


def check_arch(arch: str) -> str:
    if not isinstance(arch, str) or arch not in ARCHS:
        raise UserError(f"unknown architecture {arch!r}: use one of {', '.join(ARCHS)}")
    return arch


def conv_shapes_of(arch: str):
    """[(conv name, (Cout, Cin, 3, 3))] of an architecture (its names and shapes are VGG-19's)."""
    return layer_table(arch)[1]


def check_layers(layers, names=LAYER_NAMES, arch=DEFAULT_ARCH) -> list[str]:
    """Validate layer names (VGG-19's unless ``names`` is given); a UserError lists the valid ones.
    A bare string is one layer; a layer named twice is refused (it would count twice in a loss)."""
    if isinstance(layers, str):
        layers = [layers]
    try:
        layers = list(layers)
    except TypeError:
        raise UserError(f"layers must be a layer name or a list of them, got {layers!r}") from None
    if not layers:
        raise UserError("no layer given: name at least one of " + ", ".join(names))
    for name in layers:
        if not isinstance(name, str) or name not in names:
            hint = f" (the paper's {name} is relu{name[4:]} here)" if isinstance(name, str) and name.startswith(
                "conv") and name[4:] in {n[4:] for n in names if n.startswith("relu")} else ""
            where = "" if arch == DEFAULT_ARCH else f" in {arch}"
            raise UserError(f"unknown layer {name!r}{where}{hint}; valid layers: {', '.join(names)}")
    twice = sorted({name for name in layers if layers.count(name) > 1}, key=layers.index)
    if twice:
        raise UserError(f"layer {', '.join(twice)} given more than once; name each layer once")
    return layers


def deepest(layers) -> str:
    """The deepest of ``layers`` (names shared by every architecture keep their order)."""
    return max(layers, key=_INDEX.__getitem__)


def poolings_before(layer: str) -> int:
    """How many 2x2 poolings lie between the input and ``layer`` (poolB included in its own count).
    poolB follows block B in every architecture, so VGG-19's names answer for all of them."""
    return sum(1 for name in LAYER_NAMES[:_INDEX[layer] + 1] if name.startswith("pool"))


def map_shape(layer: str, h: int, w: int, arch: str = DEFAULT_ARCH) -> tuple[int, int, int]:
    """(C, h, w) of ``layer``'s output for an h x w input (2x2 poolings floor odd sizes, as
    PyTorch does); fc layers are (units, 1, 1)."""
    table, convs = layer_table(arch)
    owner = dict((name, own) for name, _, own in table)[layer]
    if owner in dict(FC_SIZES):
        return dict(FC_SIZES)[owner], 1, 1
    pools = poolings_before(layer)
    if owner is None:  # poolB: the channels of block B's last conv
        b = int(layer[4:])
        c = ARCHS[arch][b - 1][-1]
    else:
        c = dict(convs)[owner][0]
    return c, h >> pools, w >> pools


def pins_layout(layer: str, h: int, w: int, arch: str = DEFAULT_ARCH, channels: int = 0,
                positions: int | None = None) -> bool:
    """Whether ``layer``'s Gram matrix at an h x w input pins the image's layout: its C x M
    feature matrix has fewer positions M than channels C, so G = F F^T (rank <= M) fixes F up
    to a rotation of its M columns, and a synthesis matching it re-renders the source rather
    than sampling a new texture (relu4_1 at 128 px: 16 x 16 = 256 positions, 512 channels).
    ``channels`` K > 0: the statistics are of K projections of the channels (C counts as at most
    K); ``positions``: the positions that count, when not the whole map (its interior)."""
    c, hh, ww = map_shape(layer, h, w, arch)
    c = min(c, channels) if channels else c
    return (hh * ww if positions is None else positions) < c


def receptive_field(layer: str, pools_before: int = 0, arch: str = DEFAULT_ARCH) -> tuple[int, int, int]:
    """(jump, lo, hi): position p of ``layer``'s map sees the input pixels p*jump - lo ..
    p*jump + hi (a 3x3 conv, padded by 1, widens the window by one step of the current jump on
    each side; a 2x2 pooling doubles the jump and adds one step on the far side).
    ``pools_before``: the input is first 2x2-averaged that many times (an image pyramid level)."""
    jump, lo, hi = 1, 0, 0
    for _ in range(pools_before):
        hi, jump = hi + jump, 2 * jump
    table, _ = layer_table(arch)
    for name, kind, _ in table:
        if kind == "fc":
            raise UserError(f"{layer} sees the whole image: it has no receptive field inside it")
        if kind == "conv":
            lo, hi = lo + jump, hi + jump
        elif kind == "pool":
            hi, jump = hi + jump, 2 * jump
        if name == layer:
            return jump, lo, hi
    raise UserError(f"unknown layer {layer!r}")


def interior(layer: str, h: int, w: int, pools_before: int = 0, arch: str = DEFAULT_ARCH) -> tuple[int, int, int, int]:
    """(top, left, rows, cols): the window of ``layer``'s map, for an h x w input, whose
    positions see only pixels of the input (none of the zero padding). Near the border the
    padding makes the features unlike any inside, so statistics over the whole map carry the
    border ("dark next to the edge"); over this window they do not. rows or cols may be <= 0."""
    jump, lo, hi = receptive_field(layer, pools_before, arch)
    _, mh, mw = map_shape(layer, h >> pools_before, w >> pools_before, arch)
    first = -(-lo // jump)
    last_r, last_c = min(mh - 1, (h - 1 - hi) // jump), min(mw - 1, (w - 1 - hi) // jump)
    return first, first, last_r - first + 1, last_c - first + 1


def periodic_pad(layers, arch: str = DEFAULT_ARCH) -> int:
    """The fewest pixels P, a multiple of every layer's jump, such that an image wrapped around
    by P on each side gives maps whose central part (offset P / jump, the image's own map size)
    sees no padding: those positions are the features of the periodic image. ``layers``: layer
    names, or (layer, pools_before) pairs for the levels of an image pyramid."""
    pairs = [(l, 0) if isinstance(l, str) else tuple(l) for l in layers]
    fields = [receptive_field(l, k, arch) for l, k in pairs]
    big = max(j for j, _, _ in fields)
    need = max(max(lo, hi - j + 1) for j, lo, hi in fields)
    return big * -(-need // big)
