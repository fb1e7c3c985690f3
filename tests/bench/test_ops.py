"""bench.ops: every case's engine op agrees with its plain array-op baseline on NumPy (the same
check the benchmark makes on the device before it times anything)."""
import dataclasses

import numpy as np
import pytest

from bench import ops


@pytest.mark.parametrize("case", ops.CASES, ids=lambda c: c.name)
def test_engine_op_matches_its_baseline(case):
    ops.check(case, np, np.float64, 16)


def test_check_catches_a_wrong_op():
    """A baseline off by a little is caught: the check can fail."""
    case = next(c for c in ops.CASES if c.name.startswith("shifted gram"))
    wrong = dataclasses.replace(case, base_fwd=lambda a: ops.shifted_gram_slices(a["x"], 4) * 1.001)
    with pytest.raises(AssertionError):
        ops.check(wrong, np, np.float64, 16)
