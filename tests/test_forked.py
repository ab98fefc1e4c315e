"""compiler/forked.py and the parallel `render_all`: the same answer as in-process, whatever the child does.

- a value comes back; the child's exception is raised in the parent, with its type;
- an exception that will not unpickle, or a child that dies before answering (SIGKILL), makes
  the parent run the function itself: the compile goes on with the same result;
- `cancel()` stops a running child and leaves no zombie;
- `render_all(parallel=True)` gives the bytes of `render_all(parallel=False)` on the reference
  estate and on a generated 1,000-host estate (over FORK_MIN, so the default forks there);
  the two ferm shares make up all ferm files, once each;
- `analysis.prepare(parallel=True)` (the redundancy sweep in a child) gives the report and
  lock-out findings computed in-process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import TODAY, errors

from compiler import analysis, backends, forked
from compiler.backends import ferm
from compiler.diagnostics import Diagnostics
from compiler.project import build_model, compile_folder, load_sources

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import estate_gen  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value * 2


def _fails() -> None:
    raise ValueError("from the child")


class AwkwardError(Exception):
    """Pickles (args = the message) but will not unpickle: __init__ wants two arguments."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _awkward() -> None:
    raise AwkwardError("E999", "awkward")


def _dies_in_child(parent: int) -> str:
    if os.getpid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return "ran in the parent"


def _sleeps() -> None:
    time.sleep(60)


def test_value_comes_from_a_child():
    pid, value = forked.Forked(_pid_and, 21).result()
    assert value == 42
    assert pid != os.getpid()


def test_without_fork_it_runs_here():
    pid, value = forked.Forked(_pid_and, 21, fork=False).result()
    assert (pid, value) == (os.getpid(), 42)


def test_with_another_thread_running_it_runs_here():
    import threading
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        pid, value = forked.Forked(_pid_and, 21).result()
    finally:
        stop.set()
        other.join()
    assert (pid, value) == (os.getpid(), 42)


def test_the_childs_exception_is_raised_here():
    with pytest.raises(ValueError, match="from the child"):
        forked.Forked(_fails).result()


def test_an_exception_that_will_not_unpickle_is_raised_by_running_here():
    with pytest.raises(AwkwardError) as err:
        forked.Forked(_awkward).result()
    assert err.value.code == "E999"


def test_a_child_killed_before_answering_is_run_here():
    assert forked.Forked(_dies_in_child, os.getpid()).result() == "ran in the parent"


def test_cancel_stops_the_child_and_reaps_it():
    job = forked.Forked(_sleeps)
    pid = job._pid
    assert pid
    t0 = time.monotonic()
    job.cancel()
    assert time.monotonic() - t0 < 5
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(pid, os.WNOHANG)
    job.cancel()  # twice is fine


def test_interrupted_while_waiting_the_child_is_stopped_not_waited_for():
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGALRM, interrupt)
    job = forked.Forked(_sleeps)
    pid = job._pid
    t0 = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            job.result()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - t0 < 5  # the child sleeps for 60 s
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _same_in_both_ways(model) -> dict[str, bytes]:
    serial = backends.render_all(model, parallel=False)
    parallel = backends.render_all(model, parallel=True)
    assert list(parallel) == list(serial)
    assert parallel == serial
    return serial


def test_parallel_render_equals_serial_on_the_reference_estate():
    result = compile_folder(REPO / "policies", TODAY, render=False)
    assert result.model is not None and not errors(result.diagnostics)
    files = _same_in_both_ways(result.model)
    assert any(p.startswith("ferm/") for p in files) and "estate.json" in files


def test_parallel_render_equals_serial_at_1000_hosts(tmp_path: Path):
    estate_gen.write(estate_gen.SHAPES[1000], tmp_path)
    result = compile_folder(tmp_path, TODAY, render=False)
    assert result.model is not None and not errors(result.diagnostics)
    assert len(result.model.hosts) + len(result.model.apps) >= backends.FORK_MIN  # the default forks here
    files = _same_in_both_ways(result.model)
    assert sum(p.startswith("ferm/") for p in files) >= 1000


def test_ferm_shares_make_up_the_whole_and_do_not_overlap():
    result = compile_folder(REPO / "policies", TODAY, render=False)
    whole = ferm.render(result.model)
    first, second = ferm.render(result.model, share=(0, 2)), ferm.render(result.model, share=(1, 2))
    assert not set(first) & set(second) and first and second
    assert {**first, **second} == whole


def test_analyses_prepared_in_parallel_equal_those_computed_here(tmp_path: Path):
    estate_gen.write(estate_gen.SHAPES[1000], tmp_path)
    diags = Diagnostics()
    sources = load_sources(tmp_path, diags)
    serial, parallel = build_model(sources, diags, TODAY), build_model(sources, diags, TODAY)
    assert serial is not None and parallel is not None and serial is not parallel
    calls: list[int] = []
    real = analysis._redundancy.analyse
    analysis._redundancy.analyse = lambda *a: calls.append(os.getpid()) or real(*a)
    try:
        analysis.prepare(serial, parallel=False)
        analysis.prepare(parallel, parallel=True)
    finally:
        analysis._redundancy.analyse = real
    assert calls == [os.getpid()]  # in-process once; the other ran in the child (its list is its own)
    analysis.prepare(parallel, parallel=True)
    assert analysis.redundancy(parallel) == analysis.redundancy(serial)
    assert analysis.redundancy(parallel).sweeps  # the sweep ran, in the child
    assert analysis.lockout(parallel) == analysis.lockout(serial)
