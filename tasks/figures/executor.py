"""Run a figure's specs: in-process, on a local Dask cluster, or on an existing scheduler.

Every finished run is written at once: its image to DIR/runs/KEY.png and its row into
DIR/results.csv (rewritten whole, in the specs' order, so the file never depends on which
worker finished first). A figure started again with the same settings skips the runs whose row
and image are there: an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

from engine.io import image
from engine.errors import UserError

from . import runs

CURVE_COLUMNS = ["key", "iteration", "loss", "feature_error"]

class Results:
    """DIR/results.csv, DIR/runs/*.png and DIR/curves.csv of one figure, kept in spec order."""

    def __init__(self, out: Path, specs: list, columns: list, settings: dict):
        self.out, self.specs, self.columns = Path(out), specs, columns
        self.order = {s["key"]: i for i, s in enumerate(specs)}
        if len(self.order) != len(specs):
            seen, dup = set(), []
            for s in specs:
                if s["key"] in seen:
                    dup.append(s["key"])
                seen.add(s["key"])
            raise UserError(f"two runs would have the same name ({', '.join(sorted(set(dup)))}): an image "
                            "given twice, or two names that differ only in punctuation; give each once")
        self.rows, self.curves = {}, {}
        try:
            (self.out / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot make {self.out / 'runs'} ({exc.strerror or exc}); give another --out") from None
        self._check_settings(settings)
        self._read()

    def _check_settings(self, settings: dict) -> None:
        path = self.out / "settings.json"
        text = json.dumps(settings, indent=1, sort_keys=True)
        if path.exists() and _read_json(path) != json.loads(text):
            raise UserError(f"{self.out} holds results made with other settings ({path}); "
                            "use another --out, or --fresh to start over there")
        path.write_text(text)

    def _read(self) -> None:
        """Rows already done (same settings) whose image is still there."""
        for name, store, columns in (("results.csv", self.rows, self.columns),
                                     ("curves.csv", self.curves, CURVE_COLUMNS)):
            path = self.out / name
            if not path.exists():
                continue
            try:
                with path.open(newline="", encoding="utf-8") as f:
                    reader = csv.DictReader(f)
                    if path.stat().st_size and "key" not in (reader.fieldnames or []):
                        raise ValueError("no 'key' column")
                    if path.stat().st_size and reader.fieldnames != columns:
                        raise ValueError(f"its columns are {','.join(reader.fieldnames)}, this figure writes "
                                         f"{','.join(columns)}")
                    for r in reader:
                        if None in r or None in r.values():
                            raise ValueError(f"line {reader.line_num} has the wrong number of cells")
                        if r.get("key") in self.order:
                            _check_row(r, columns)
                        if r.get("key") in self.order and (self.out / "runs" / f"{r['key']}.png").exists():
                            if store is self.rows:
                                store[r["key"]] = r
                            else:
                                store.setdefault(r["key"], []).append(r)
            except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
                raise UserError(f"{path}: cannot be read back ({exc}); fix or remove it, or start over "
                                "with --fresh") from None

    def todo(self) -> list:
        return [s for s in self.specs if s["key"] not in self.rows]

    def add(self, result: dict) -> None:
        key = result["row"]["key"]
        image.save_png(self.out / "runs" / f"{key}.png", result["image"], {"row": result["row"]})
        self.rows[key] = result["row"]
        self.curves[key] = [{"key": key, **c} for c in result.get("curve", [])]
        self._write()

    def _write(self) -> None:
        keys = sorted(self.rows, key=self.order.__getitem__)
        _write_csv(self.out / "results.csv", self.columns, [self.rows[k] for k in keys])
        _write_csv(self.out / "curves.csv", CURVE_COLUMNS,
                   [c for k in keys for c in self.curves.get(k, [])])

    def ordered_rows(self) -> list:
        """Finished rows in spec order, numbers as numbers (rows read back from the CSV are text)."""
        return [{k: _number(v) for k, v in self.rows[s["key"]].items()} for s in self.specs if s["key"] in self.rows]

    def curve(self, key: str) -> list:
        return [{k: _number(v) for k, v in c.items()} for c in self.curves.get(key, [])]


def _read_json(path: Path):
    """A JSON file this folder's earlier run wrote; damaged: one line naming it and --fresh."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read back ({exc}); fix or remove it, or start over with --fresh") from None


def _check_row(row: dict, columns) -> None:
    """A finished row read back: its numeric cells must be numbers (a corrupt one would be
    dropped from the figure while still counted)."""
    for k in ("psnr", "ssim", "feature_error", "seconds", "iteration", "loss"):
        v = row.get(k)
        if k in columns and v not in (None, ""):
            try:
                float(v)
            except ValueError:
                raise ValueError(f"row {row.get('key')!r}: {k} is {v!r}, not a number") from None


def _number(v):
    if isinstance(v, str):
        try:
            return int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            return v if v else None
    return v


def _write_csv(path: Path, columns: list, rows: list) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: _cell(r.get(c)) for c in columns})
    tmp.replace(path)


def _cell(v):
    """Floats as repr (round-trips exactly: the in-process / Dask parity is checked on them)."""
    if v is None:
        return ""
    return repr(float(v)) if isinstance(v, float) else v


def run_all(results: Results, workers: int = 0, scheduler: str | None = None, quiet: bool = False) -> None:
    """Run every spec not done yet; in-process unless ``workers`` or ``scheduler`` is given."""
    todo = results.todo()
    done_before = len(results.specs) - len(todo)
    if not quiet and done_before:
        print(f"resuming: {done_before} of {len(results.specs)} runs already in {results.out}")
    progress = _Progress(len(todo), quiet)
    if not todo:
        return
    if workers or scheduler:
        _run_dask(results, todo, workers, scheduler, progress)
    else:
        from ..cli import signals

        for spec in todo:
            result = runs.execute(spec)
            results.add(result)
            progress(result["row"])
            if signals.pending():  # Ctrl-C arrived while the run saved: stop after it, not never
                raise KeyboardInterrupt


def _dask():
    """dask.distributed, or a UserError saying how to install it."""
    try:
        from dask import distributed
    except ImportError:
        from ..cli.console import install_hint
        raise UserError(f"--workers/--scheduler need dask.distributed: "
                        f"{install_hint('dask', chr(39) + 'dask[distributed]' + chr(39))}") from None
    return distributed


def check_dask(workers: int, scheduler: str | None) -> None:
    """Before any work: dask is there when asked for, and ``scheduler`` is an address Dask can
    dial (a known scheme; host and port for tcp, tls, ws, wss). Whether it answers is known
    only when it is dialled."""
    if scheduler is not None and not scheduler.strip():
        raise UserError("--scheduler needs an address, e.g. tcp://host:8786")
    if workers and scheduler:
        raise UserError("--workers starts a local cluster, --scheduler uses an existing one: give one of the two")
    if workers:
        _dask()
    if not scheduler:
        return
    _dask()
    from distributed.comm import parse_address
    from distributed.comm.addressing import get_address_host_port
    from distributed.comm.registry import backends

    try:
        scheme, _ = parse_address(scheduler)
        if scheme not in backends:
            raise ValueError(f"unknown scheme {scheme}://; use one of {', '.join(s + '://' for s in sorted(backends))}")
        if scheme in ("tcp", "tls", "ws", "wss"):
            _, port = get_address_host_port(scheduler)
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is not between 1 and 65535")
    except (ValueError, TypeError) as exc:
        raise UserError(f"--scheduler {scheduler!r} is not a Dask address ({exc}); give one like "
                        "tcp://host:8786") from None


def _run_dask(results, todo, workers, scheduler, progress) -> None:
    distributed = _dask()
    Client, LocalCluster, as_completed = distributed.Client, distributed.LocalCluster, distributed.as_completed
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); check the address") from None
    else:
        # one thread per worker process: each run already uses the cores it is given (numba, BLAS)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
    futures = []
    try:
        futures = [client.submit(runs.execute, spec, key=f"ranvgg-{spec['key']}", pure=False) for spec in todo]
        for future in as_completed(futures):
            result = future.result()
            results.add(result)
            progress(result["row"])
    finally:
        for f in futures:
            f.cancel()
        client.close()
        if cluster is not None:
            cluster.close()


class _Progress:
    """One line per finished run: count, key, headline score, elapsed and ETA."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.done, self.t0 = total, quiet, 0, time.perf_counter()

    def __call__(self, row: dict) -> None:
        self.done += 1
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        score = next((f"{c} {row[c]:.4g}" for c in ("psnr", "gram_error_random_judge", "style_error_random_judge")
                      if isinstance(row.get(c), float)), "")
        print(f"[{self.done}/{self.total}] {row['key']}: {score} ({row['seconds']:.1f} s; "
              f"elapsed {elapsed:.0f} s, ETA {eta:.0f} s)", flush=True, file=sys.stdout)
