"""bench/gpu_proof.py without a GPU: the step runner (timeouts, failures, skips, the overall
budget), report.md, junit.xml and the exit status on synthetic steps; the real plan's commands
exist; and the real command run on the CPU (its --device cpu rehearsal), so that its first run on a
GPU is not its first run."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from bench import gpu_proof
from bench.gpu_proof import Step

PY = sys.executable


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def quiet(*args, **kwargs):
    pass


def run(steps, tmp_path, **kwargs):
    rc = gpu_proof.run_all(steps, tmp_path, "header line", echo=quiet, **kwargs)
    return rc, (tmp_path / "report.md").read_text(), ET.parse(tmp_path / "junit.xml").getroot()


def test_all_pass_gives_zero_and_a_report(tmp_path):
    rc, report, junit = run([Step("a", "first", py("print('hello from a')"), 20),
                             Step("b", "second", py("print('b <&> out')"), 20),
                             Step("c", "cannot apply", ["no-such-tool"], 20, skip="no tool here")], tmp_path)
    assert rc == 0
    assert "| a | passed |" in report and "| c | skipped |" in report and "hello from a" in report
    assert junit.get("tests") == "3" and junit.get("failures") == "0" and junit.get("skipped") == "1"
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert cases["c"].find("skipped") is not None and cases["a"].find("failure") is None
    assert "b <&> out" in cases["b"].find("system-out").text          # escaped in the XML, intact after parsing
    assert (tmp_path / "a.log").read_text().endswith("hello from a\n")


def test_a_failure_a_crash_and_a_hang_each_fail_only_their_step(tmp_path):
    steps = [Step("bad", "exits 3", py("import sys; print('oops'); sys.exit(3)"), 20),
             Step("crash", "raises", py("raise RuntimeError('boom')"), 20),
             Step("hang", "sleeps", py("import time; print('waiting', flush=True); time.sleep(60)"), 1.5),
             Step("missing", "no program", ["/no/such/program"], 20),
             Step("after", "still runs", py("print('ran')"), 20)]
    rc, report, junit = run(steps, tmp_path)
    assert rc == 1
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert cases["bad"].find("failure").get("message") == "exit status 3"
    assert "RuntimeError: boom" in cases["crash"].find("failure").text
    assert cases["hang"].find("failure").get("message") == "timed out"
    assert "waiting" in cases["hang"].find("failure").text and "stopped after 2 s" in report
    assert float(cases["hang"].get("time")) < 10
    assert cases["missing"].find("failure") is not None
    assert cases["after"].find("failure") is None and junit.get("failures") == "4"
    assert "| after | passed |" in report


def test_the_budget_cuts_each_steps_limit(tmp_path):
    steps = [Step("slow", "sleeps", py("import time; time.sleep(60)"), 100),
             Step("next", "quick", py("print(1)"), 100)]
    rc, report, junit = run(steps, tmp_path, budget=1.5)
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert rc == 1 and cases["slow"].find("failure").get("message") == "timed out"
    assert float(cases["slow"].get("time")) < 10
    assert "budget of 2 s was spent" in cases["next"].find("failure").text   # nothing left: not run


@pytest.mark.parametrize("device", ["gpu", "cpu"])
def test_every_planned_command_exists(device, tmp_path):
    steps = gpu_proof.plan(device, tmp_path)
    names = [s.name for s in steps]
    assert len(set(names)) == len(names)
    assert {"env", "tests", "gradcheck", "network", "wrap", "memcheck", "launches", "ops", "iteration",
            "optimizers", "invert", "texture", "style"} <= set(names)
    for s in steps:
        argv = s.argv[s.argv.index(PY):] if PY in s.argv else s.argv
        if argv[:2] == [PY, "-m"]:
            assert importlib.util.find_spec(argv[2]) is not None, argv
            if argv[2] == "bench.gpu_proof":
                assert argv[4] in gpu_proof.STEP_FUNCTIONS, argv
    if device == "gpu":
        assert all(s.skip is None for s in steps if s.name != "memcheck")
        assert sum(s.timeout for s in steps) <= 1.0 * 60 * 30    # each limit generous; the budget cuts the whole
        tests = next(s for s in steps if s.name == "tests")
        assert tests.env["RANVGG_REQUIRE_GPU"] == "1"


def test_unknown_step_is_a_one_line_error(tmp_path):
    done = subprocess.run([PY, "-m", "bench.gpu_proof", "--out", str(tmp_path), "--steps", "env,nope"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == "error: --steps: no step named nope; --list shows them"


def test_the_command_runs_on_the_cpu(tmp_path):
    """The real command, real steps (versions, the optimisers' comparison), on the CPU."""
    done = subprocess.run([PY, "-m", "bench.gpu_proof", "--device", "cpu", "--out", str(tmp_path),
                           "--steps", "env,optimizers,tests"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "report.md").read_text()
    assert "| env | passed |" in report and "| optimizers | passed |" in report and "| tests | skipped |" in report
    assert "device L-BFGS reaches scipy's loss" in report
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("tests") == "3" and junit.get("failures") == "0"


@pytest.mark.slow
def test_the_whole_plan_rehearsed_on_the_cpu(tmp_path):
    done = subprocess.run([PY, "-m", "bench.gpu_proof", "--device", "cpu", "--out", str(tmp_path), "--budget", "1500"],
                          capture_output=True, text=True, timeout=1600)
    assert done.returncode == 0, (tmp_path / "report.md").read_text()
