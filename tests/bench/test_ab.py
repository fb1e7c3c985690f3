"""bench.ab: two checkouts' evaluations interleaved, one at a time."""
import pytest

from bench import ab


def test_compare_times_both_sides_each_round():
    t = ab.compare(ab.HERE, size=32, rounds=2, workers=1)     # this checkout against itself
    assert len(t["base"]) == len(t["this"]) == 2
    assert all(ms > 0 for ms in t["base"] + t["this"])


def test_a_base_that_is_not_a_checkout_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no engine/ there"):
        ab.main(["--base", str(tmp_path)])
