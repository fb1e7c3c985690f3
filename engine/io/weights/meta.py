"""The ``meta`` record of a weights file: a JSON object, checked against a small schema.

Known keys are typed; other keys may hold any JSON (the stacked builder stores its scores
there), but the text is bounded in size and nesting depth before it is parsed, so a hostile
file cannot make ``json.loads`` recurse or allocate without limit.

    kind            str     "random", "stacked", "trained", ...
    seed            int     >= 0
    sigma           number  > 0, finite
    pooling         str     "avg" or "max"
    preprocessing   str     a name in engine.io.image.PREPROCESSING ("caffe", "torchvision")
    fc_rng_state    dict    a NumPy PCG64 state: {"bit_generator": "PCG64",
                            "state": {"state": int, "inc": int}, "has_uint32": int, "uinteger": int}
"""
from __future__ import annotations

import json
import math

from ...errors import UserError
from ..image import PREPROCESSING

MAX_CHARS = 1 << 20      # 1 MiB of JSON: the stacked scores are a few kB
MAX_DEPTH = 32           # json.loads recurses once per level


def parse(text: str, where: str) -> dict:
    """JSON text -> dict, checked (``where`` names the file in messages)."""
    if len(text) > MAX_CHARS:
        raise UserError(f"{where}: 'meta' is {len(text)} characters, more than the {MAX_CHARS} allowed; "
                        "re-save the weights")
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise UserError(f"{where}: 'meta' is nested {depth} levels deep (at most {MAX_DEPTH}); re-save the weights")
    try:
        meta = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise UserError(f"{where}: 'meta' is not valid JSON ({exc}); re-save the weights") from None
    check(meta, where)
    return meta


def dumps(meta: dict) -> str:
    """meta -> JSON text that ``parse`` accepts: NumPy scalars and arrays become numbers and
    lists, and a NaN or infinite number (say, a diverged score) becomes null rather than a
    token JSON does not allow."""
    return json.dumps(_finite_json(meta), allow_nan=False)


def _finite_json(v):
    if isinstance(v, dict):
        return {k: _finite_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_json(x) for x in v]
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):   # NumPy scalar or array
        return _finite_json(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def nesting_depth(text: str) -> int:
    """Deepest [ / { nesting of a JSON text, counted without parsing (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def check(meta, where: str) -> None:
    """A UserError naming the first key that breaks the schema (see the module docstring)."""
    if not isinstance(meta, dict):
        raise UserError(f"{where}: 'meta' must be a JSON object, got {_json_type(meta)}; re-save the weights")
    for key, test, what in _SCHEMA:
        if key in meta and not test(meta[key]):
            raise UserError(f"{where}: meta {key!r} must be {what}, got {_short(meta[key])}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _is_pcg64_state(v) -> bool:
    if not isinstance(v, dict) or set(v) != {"bit_generator", "state", "has_uint32", "uinteger"}:
        return False
    inner = v["state"]
    return (v["bit_generator"] == "PCG64" and isinstance(inner, dict) and set(inner) == {"state", "inc"}
            and all(_is_int(x) and 0 <= x < 2**128 for x in inner.values())
            and v["has_uint32"] in (0, 1) and _is_int(v["uinteger"]) and 0 <= v["uinteger"] < 2**32)


_SCHEMA = (
    ("kind", lambda v: isinstance(v, str), "a string"),
    ("seed", lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    ("sigma", lambda v: _is_number(v) and v > 0, "a positive number"),
    ("pooling", lambda v: v in ("avg", "max"), "'avg' or 'max'"),
    ("preprocessing", lambda v: isinstance(v, str) and v in PREPROCESSING, "one of " + ", ".join(PREPROCESSING)),
    ("fc_rng_state", _is_pcg64_state, "a NumPy PCG64 generator state "
     "{bit_generator: 'PCG64', state: {state, inc}, has_uint32, uinteger}"),
)


def _json_type(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(v), "a number")


def _short(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."
