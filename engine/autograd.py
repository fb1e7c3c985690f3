"""A tiny reverse-mode autograd: just enough for fixed-weight networks and their losses.

Each op returns a ``Tensor`` that remembers its parents and a function that maps the gradient
of its output to the gradients of its parents. ``backward`` visits the graph in reverse
topological order and accumulates (``+=``) where a tensor feeds several consumers, as happens
when several loss layers tap the same chain. Only gradients with respect to inputs are ever
computed: the weights are constants, never tensors.
"""
from __future__ import annotations


class Tensor:
    """An array (NumPy or CuPy) plus how it was made.

    ``requires_grad`` is true for leaves created with it and for anything computed from them;
    everything else (targets, features requested without a graph) keeps no history.
    """

    __slots__ = ("data", "parents", "backward_fn", "requires_grad", "grad", "name")

    def __init__(self, data, parents=(), backward_fn=None, requires_grad=False, name=None):
        self.data = data
        self.parents = parents
        self.backward_fn = backward_fn
        self.requires_grad = requires_grad
        self.grad = None
        self.name = name

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        kind = "leaf" if not self.parents else f"{len(self.parents)} parent(s)"
        return f"Tensor({self.name or ''} {tuple(self.shape)} {self.dtype}, {kind})"

    def __add__(self, other):
        return add(self, other)


def record(data, parents, backward_fn, name=None) -> Tensor:
    """Wrap an op's output; keep its history only if some parent needs a gradient.

    ``backward_fn(gy)`` returns one gradient per parent (``None`` for a parent needing none).
    """
    if any(p.requires_grad for p in parents):
        return Tensor(data, tuple(parents), backward_fn, True, name)
    return Tensor(data, name=name)


def add(*terms: Tensor) -> Tensor:
    """Sum of tensors of one shape (used to add scalar loss terms)."""
    total = terms[0].data
    for t in terms[1:]:
        total = total + t.data
    return record(total, terms, lambda gy: tuple(gy for _ in terms), name="add")


def scale(t: Tensor, factor: float) -> Tensor:
    """``factor * t``."""
    return record(t.data * factor, (t,), lambda gy: (gy * factor,), name="scale")


def _topological(root: Tensor) -> list[Tensor]:
    order, seen, stack = [], set(), [(root, False)]
    while stack:  # iterative DFS: a deep net must not hit the recursion limit
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node.parents if p.requires_grad)
    return order


def backward(root: Tensor, grad=None, retain_graph: bool = False) -> None:
    """Fill ``.grad`` of every leaf that requires it with d(root)/d(leaf).

    ``grad`` defaults to ones (for a scalar root). Intermediate gradients are freed as soon as
    they have been pushed to the parents. Unless ``retain_graph``, each node also lets go of
    its parents and of what its backward saved once that backward has run, so that the forward's
    activations are freed as the backward passes them (as PyTorch does): peak memory is the
    forward's, not the forward's plus the backward's. The graph then cannot be run backward
    again; keep it (``retain_graph=True``) to back-propagate several roots through one forward.
    """
    if not root.requires_grad:
        raise ValueError("backward() on a tensor that does not depend on any input needing a gradient")
    xp = _xp(root.data)
    root.grad = xp.ones_like(root.data) if grad is None else grad
    order = _topological(root)
    while order:
        node = order.pop()  # reverse topological order; popped, so the list holds it no more
        if node.backward_fn is None:  # a leaf: keep its gradient
            continue
        grads = node.backward_fn(node.grad)
        node.grad = None
        for parent, g in zip(node.parents, grads):
            if g is None or not parent.requires_grad:
                continue
            parent.grad = g if parent.grad is None else parent.grad + g
        grads = g = None
        if not retain_graph:
            node.backward_fn, node.parents = _consumed, ()


def _consumed(gy):
    raise RuntimeError("backward() through a graph already run backward: pass retain_graph=True "
                       "to the first backward() to run several")


def _xp(a):
    from .backend import array_module

    return array_module(a)
