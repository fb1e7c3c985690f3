"""What a run tells the user: quiet by default in the Python API, talkative on the command line.

``say`` prints only inside ``speaking(True)`` (the command line, or ``run(..., verbose=True)``),
wrapped to 80 columns. ``Progress`` shows steps done with an ETA: a tqdm bar where a terminal is
attached and tqdm is installed (the ``progress`` extra), plain lines every N steps otherwise.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import sys
import textwrap
import time

WIDTH = 80
_VERBOSE = contextvars.ContextVar("ranvgg_verbose", default=False)


@contextlib.contextmanager
def speaking(on: bool = True):
    """Within this block, ``say`` and ``Progress`` print (``on``) or stay silent."""
    token = _VERBOSE.set(bool(on))
    try:
        yield
    finally:
        _VERBOSE.reset(token)


def verbose() -> bool:
    return _VERBOSE.get()


def say(text: str = "", err: bool = False) -> None:
    """Print ``text`` (to stderr with ``err``), each line wrapped to 80 columns, if speaking."""
    if not _VERBOSE.get():
        return
    stream = sys.stderr if err else sys.stdout
    lines = []
    for line in str(text).split("\n"):
        # long words (paths) are not broken: a path cut in two cannot be pasted
        lines += textwrap.wrap(line, WIDTH, subsequent_indent="  ", break_long_words=False,
                               break_on_hyphens=False) or [""]
    _write(stream, "\n".join(lines))


def print_error(text: str) -> None:
    """``error: text`` on stderr, one line (never wrapped: scripts grep it), if speaking."""
    if _VERBOSE.get():
        _write(sys.stderr, f"error: {text}")


def quiet_by_default(run):
    """Decorate a task's ``run(**options)``: it prints nothing unless called with
    ``verbose=True`` (the command line does)."""
    @functools.wraps(run)
    def wrapper(*args, verbose: bool = False, **kwargs):
        with speaking(verbose):
            return run(*args, **kwargs)
    return wrapper


def install_hint(extra: str, packages: str) -> str:
    """How to add an optional extra from where the user stands: from ranvgg's source folder
    (a checkout, or an editable install of one) its extra; otherwise the packages themselves
    (ranvgg is not on a package index, so "ranvgg[extra]" would not resolve)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if (root / "setup.cfg").is_file():
        return f'pip install "{root}[{extra}]"'
    return f"pip install {packages}"


def duration(s: float) -> str:
    """Seconds as '42s' or '3m07s'."""
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def fit(*candidates: str) -> str:
    """The first candidate line that fits in 80 columns (else the last, cut)."""
    for line in candidates:
        if len(line) <= WIDTH:
            return line
    return candidates[-1][:WIDTH]


class Progress:
    """``total`` steps: a tqdm bar (terminal) or a line every ``every`` steps; nothing when quiet
    or when ``every`` is 0. ``step(n, status)`` after step n; ``write`` prints without breaking
    the bar; ``close`` at the end."""

    def __init__(self, total: int, every: int = 10, unit: str = "it", bar: bool | None = None):
        self.total, self.every, self.unit = total, every, unit
        self.t0 = time.perf_counter()
        self.done = 0
        self._bar = None
        self.on = _VERBOSE.get() and every > 0
        if self.on and (bar if bar is not None else sys.stdout.isatty()):
            try:
                from tqdm import tqdm
            except ImportError:  # the progress extra is not installed: plain lines
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, unit=unit, ncols=WIDTH, dynamic_ncols=False,
                                 file=sys.stdout, leave=True)

    def step(self, n: int, status: str = "", detail: str = "") -> None:
        """Step ``n`` (1-based) is done. ``status``: a short text (the bar's postfix, the line's
        middle); ``detail``: more, shown on the line when it fits."""
        self.done = n
        if not self.on:
            return
        if self._bar is not None:
            self._bar.update(n - self._bar.n)
            self._bar.set_postfix_str(status, refresh=True)
            return
        if n % self.every and n != self.total:
            return
        elapsed = time.perf_counter() - self.t0
        per = elapsed / max(n, 1)
        head = f"{self.unit} {n:{len(str(self.total))}d}/{self.total}"
        eta = f"ETA {duration(per * (self.total - n))}"
        rate = f"{per:.2f} s/{self.unit}"
        line = lambda *parts: "  ".join(p for p in parts if p)  # noqa: E731
        _write(sys.stdout, fit(line(head, status, detail, rate, eta), line(head, status, detail, eta),
                               line(head, status, rate, eta), line(head, status, eta)))

    def advance(self, status: str = "", detail: str = "") -> None:
        """One more step done (when the caller does not count)."""
        self.step(self.done + 1, status, detail)

    def write(self, text: str) -> None:
        if not _VERBOSE.get():
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            say(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _write(stream, text: str) -> None:
    print(text, file=stream, flush=True)


class _GuardedStream:
    """A stream whose writes never fail: once the reader is gone (``| head``: EPIPE) or the
    target is full (``> /dev/full``: ENOSPC), the file descriptor is pointed at the null device,
    one note goes to stderr, and the run goes on (its files are what matters)."""

    def __init__(self, stream):
        self._stream, self.closed_by = stream, None

    def write(self, text):
        if self.closed_by is None:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._gone(exc)
        return len(text)

    def flush(self):
        if self.closed_by is None:
            try:
                self._stream.flush()
            except OSError as exc:
                self._gone(exc)

    def _gone(self, exc: OSError) -> None:
        self.closed_by = exc
        try:  # what is still buffered, and Python's own flush at exit, go nowhere, quietly
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass
        try:
            print(f"note: standard output is closed ({exc.strerror or exc}): the rest is not printed "
                  "(a run goes on and saves its files)", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_stdout():
    """Within this block, a closed or full standard output never raises (``_GuardedStream``)."""
    if isinstance(sys.stdout, _GuardedStream) or sys.stdout is None:
        yield
        return
    old = sys.stdout
    sys.stdout = guard = _GuardedStream(old)
    try:
        yield
    finally:
        if sys.stdout is guard:
            sys.stdout = old
