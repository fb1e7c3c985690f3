"""Signals of the command-line tasks: SIGTERM and SIGHUP stop a run like Ctrl-C, and saving is
never cut.

    with handling():          # SIGTERM/SIGHUP raise KeyboardInterrupt, as SIGINT does: the run saves
        ...
        with deferred():      # while the outputs are written, Ctrl-C / SIGTERM / SIGHUP wait
            save()
    stopped_by()              # "Ctrl-C", "SIGTERM" or "SIGHUP": what the log says stopped the run
    exit_status(code)         # 130 after SIGINT, 143 after SIGTERM, 129 after SIGHUP

Only the main thread can own signal handlers; elsewhere (a task called from a worker thread)
both helpers do nothing.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading

EXIT_SIGINT, EXIT_SIGTERM, EXIT_SIGHUP = 130, 143, 129
_received: list[int] = []   # signals seen since handling() began, in order
# SIGHUP: the terminal was closed; not on Windows
HANDLED = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt(signum, frame):
    _received.append(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def handling():
    """SIGINT, SIGTERM and SIGHUP all raise KeyboardInterrupt (so each saves what there is)."""
    _received.clear()
    if not _main_thread():
        yield
        return
    with _handled_by(_interrupt):
        yield


@contextlib.contextmanager
def _handled_by(handler):
    """SIGINT, SIGTERM and SIGHUP go to ``handler`` inside the block; the old handlers come back
    after."""
    old = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred(what: str = "saving"):
    """Hold SIGINT and SIGTERM while the block runs: a second Ctrl-C during a save must not
    leave half a file or lose the run. A signal that arrives is noted (once, on stderr) and
    counts for the exit status; the save goes on."""
    if not _main_thread():
        yield
        return

    noted = []

    def note(signum, frame):
        if not noted:
            print(f"\n{what}: please wait, the files are being written", file=sys.stderr, flush=True)
        noted.append(signum)
        _received.append(signum)

    with _handled_by(note):
        yield


def pending() -> bool:
    """A signal arrived (and was held while files were written) since ``handling()`` began or
    ``clear()`` was called: a loop of runs stops after the current one."""
    return bool(_received)


def clear() -> None:
    _received.clear()


def stopped_by() -> str:
    """What stopped the run, as the user knows it: "SIGTERM", "SIGHUP" or "Ctrl-C" (SIGINT, and
    the Python API's KeyboardInterrupt)."""
    for sig in _received:
        if sig == signal.SIGTERM:
            return "SIGTERM"
        if sig == getattr(signal, "SIGHUP", None):
            return "SIGHUP"
    return "Ctrl-C"


def exit_status(code: int) -> int:
    """``code``, or the status of the signal that stopped the run (143 SIGTERM, 129 SIGHUP,
    130 SIGINT)."""
    if not _received:
        return code
    return {"SIGTERM": EXIT_SIGTERM, "SIGHUP": EXIT_SIGHUP}.get(stopped_by(), EXIT_SIGINT)
