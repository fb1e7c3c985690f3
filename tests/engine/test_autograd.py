"""The tape: shared subgraphs accumulate, activations are let go as the backward passes them,
and a consumed graph refuses a second backward instead of giving a wrong gradient."""
import gc
import weakref

import numpy as np
import pytest

from engine import autograd
from engine.autograd import Tensor, record


class Tracked(np.ndarray):
    """An ndarray that can be weakly referenced: to see when the tape lets go of it."""


def _square(t: Tensor, log: list) -> Tensor:
    """t * t, whose backward reads t's data (what an op saves) and logs which arrays are alive."""
    x = t.data

    def back(gy):
        log.append(sum(r() is not None for r in refs))
        return (2 * x * gy,)

    out = record((x * x).view(Tracked), (t,), back)
    refs.append(weakref.ref(out.data))
    return out


refs: list = []


def test_activations_are_freed_as_the_backward_passes_them():
    refs.clear()
    log = []
    x = Tensor(np.full(4, 1.5), requires_grad=True)
    h = x
    for _ in range(5):
        h = _square(h, log)
    loss = autograd.add(autograd.scale(h, 1.0))
    del h
    gc.collect()
    assert sum(r() is not None for r in refs) == 5  # the whole forward is held before
    autograd.backward(loss)
    # each backward sees one activation fewer: the ones it has passed are gone (the last one is
    # still the loss's parent's data when its backward runs)
    assert log == [5, 4, 3, 2, 1]
    np.testing.assert_allclose(x.grad, 32 * 1.5 ** 31)


def test_retain_graph_runs_several_roots_through_one_forward_and_a_consumed_graph_refuses():
    x = Tensor(np.arange(1.0, 4.0), requires_grad=True)
    h = _square(x, [])
    a, b = autograd.scale(h, 2.0), autograd.scale(h, 3.0)
    autograd.backward(autograd.add(a), np.ones(3), retain_graph=True)
    np.testing.assert_allclose(x.grad, 4 * x.data)
    x.grad = None
    autograd.backward(autograd.add(b), np.ones(3))
    np.testing.assert_allclose(x.grad, 6 * x.data)
    with pytest.raises(RuntimeError, match="retain_graph"):
        autograd.backward(autograd.scale(h, 1.0), np.ones(3))


def test_a_tensor_feeding_two_consumers_gets_both_gradients():
    x = Tensor(np.array([2.0, -1.0]), requires_grad=True)
    h = _square(x, [])
    autograd.backward(autograd.add(autograd.scale(h, 2.0), autograd.scale(h, 5.0)), np.ones(2))
    np.testing.assert_allclose(x.grad, 7 * 2 * x.data)
