"""bench/optimizers.py's --host-cost: each optimiser timed alone, with the memory asked for."""
from __future__ import annotations

from bench import _common, optimizers


def test_host_cost_times_a_full_history_of_the_size_asked_for(capsys, monkeypatch):
    calls = []
    real = _common.optimiser_cost

    def spy(size, iters, method, history):
        calls.append((size, iters, history))
        return real(size, iters, method, history)

    monkeypatch.setattr(_common, "optimiser_cost", spy)
    optimizers.main(["--host-cost", "32", "--repeat", "1", "--history", "15"])
    out = capsys.readouterr().out
    assert "history 15, 30 iterations" in out
    assert calls == [(32, 30, 15), (32, 30, 15)]        # scipy's, then the device L-BFGS
    assert len(out.strip().splitlines()) == 2
