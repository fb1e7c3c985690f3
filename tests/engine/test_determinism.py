"""The same seed and options give the same image, bit for bit, with 1 or 2 threads, and from a
worker thread (as on a Dask worker) as from the main thread (engine/parallel.py: every GEMM is
cut into blocks fixed by its shapes, each a single-threaded BLAS call; numba's loops have no
reductions across threads). Each thread count runs in its own process: the counts are read at
start-up."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import hashlib, json, threading
import numpy as np
from engine import parallel
from engine.io import image
from engine.objectives import Objective
from engine.vgg import VGG19
from tasks import invert


def digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def run():
    img, log = invert.run(image="astronaut", layer="pool3", size=64, iters=8, net="random", device="cpu")
    net = VGG19.random(seed=0, device="cpu")
    rng = np.random.default_rng(0)
    xs = image.preprocess(rng.uniform(0, 255, (64, 64, 3)).astype(np.float32))
    tex = Objective.texture(net, xs, ["relu1_1", "relu2_1", "relu3_1"])
    value, grad = tex.value_and_grad(image.preprocess(rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)))
    return {"image": digest(img), "loss": log["final_loss"], "texture": [value, digest(grad)]}


def run_made():
    # run() with every layer's Winograd weights made at each call, in small blocks (the path of
    # a deep layer at 256 px and up), on fresh networks
    from engine.ops import winograd
    winograd.U_CACHE_BYTES = winograd.U_PREFIX_BYTES = 0
    winograd.U_POINT_ELEMENTS = 1000
    return run()


out = {"threads": parallel.threads(), "main": run()}
box = {}
worker = threading.Thread(target=lambda: box.update(r=run()))
worker.start(); worker.join()
out["worker thread"] = box["r"]
out["U made per call"] = run_made()
print(json.dumps(out))
"""


def _child(threads: int) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to run 2 threads")
def test_one_and_two_threads_give_the_same_bits():
    results = {}
    children = [threading.Thread(target=lambda t=t: results.update({t: _child(t)})) for t in (1, 2)]
    for c in children:
        c.start()
    for c in children:
        c.join()
    one, two = results[1], results[2]
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["main"] == two["main"] == one["worker thread"] == two["worker thread"], (one, two)
    assert one["U made per call"] == two["U made per call"], (one, two)
    assert one["U made per call"]["texture"][1] != one["main"]["texture"][1]  # float32: another rounding
