"""bench.iteration's timing: each contender in a process of its own (bench._common.alternate_processes)."""
import pytest

from bench import _common
from engine import UserError


def test_each_contender_is_timed_in_a_process_of_its_own():
    med = _common.alternate_processes(["engine"], 32, "pool1", "cpu", 3, pause=0)
    assert list(med) == ["engine"] and 0 < med["engine"] < 30


def test_a_timing_process_that_cannot_start_is_one_error_line():
    with pytest.raises(UserError, match="the bogus timing process failed to start: run `python -m bench._timer bogus"):
        _common.alternate_processes(["bogus"], 32, "pool1", "cpu", 1, pause=0)


def test_iteration_times_the_engine_in_its_own_process_and_prints_the_mode(capsys, monkeypatch):
    from bench import iteration

    monkeypatch.setattr(_common, "peak_bytes", lambda *a, **k: None)
    monkeypatch.setattr(iteration, "peak_bytes", lambda *a, **k: None)
    monkeypatch.setattr(iteration, "torch_evaluation", lambda *a, **k: None)   # the engine alone, as without torch
    iteration.main(["--sizes", "32", "--layer", "pool1", "--repeat", "2"])
    out = capsys.readouterr().out
    assert "each in a process of its own" in out
    row = next(line for line in out.splitlines() if line.split()[:2] == ["32", "ranvgg"])
    assert float(row.split()[2].rstrip("ms")) > 0
