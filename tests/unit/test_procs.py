"""Child processes: spawn with a log, wait until ready or dead, stop (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from floorwalker import procs
from floorwalker.errors import ServiceStartError

#: Says "ready" once it runs (after ignoring SIGTERM, with ``ignore``), then waits to be stopped.
CHILD = """
import signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(600)
"""


def _child(tmp_path: Path, mode: str = "plain") -> tuple[procs.Process, Path]:
    log = tmp_path / f"{mode}.log"
    proc = procs.spawn([sys.executable, "-c", CHILD, mode], log)
    return proc, log


def _says_ready(log: Path) -> bool:
    return procs.log_tail(log) == "ready"


def test_a_child_becomes_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc, log = _child(tmp_path)
    try:
        assert procs.wait_ready(proc, lambda: _says_ready(log), 60, "the child", [log])
    finally:
        procs.stop(proc, 60)
    assert proc.returncode == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    proc, log = _child(tmp_path, "ignore")
    try:
        assert procs.wait_ready(proc, lambda: _says_ready(log), 60, "the stubborn child", [log])
    finally:
        procs.stop(proc, 0.2)
    assert proc.returncode == -signal.SIGKILL


def test_stop_all_signals_every_child_and_leaves_the_dead_alone(tmp_path: Path) -> None:
    polite, log = _child(tmp_path)
    stubborn, stubborn_log = _child(tmp_path, "ignore")
    done = procs.spawn([sys.executable, "-c", "pass"], tmp_path / "done.log")
    done.wait()
    try:
        assert procs.wait_until(lambda: _says_ready(log) and _says_ready(stubborn_log), 60)
    finally:
        procs.stop_all([polite, stubborn, done], 0.2)
    assert (polite.returncode, stubborn.returncode, done.returncode) == (-signal.SIGTERM, -signal.SIGKILL, 0)


def test_a_child_that_dies_before_ready_is_named_with_its_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "widget.log"
    script = "import sys; print('starting'); print('widget: no such config', file=sys.stderr); sys.exit(3)"
    proc = procs.spawn([sys.executable, "-c", script], log)
    with pytest.raises(ServiceStartError) as err:
        procs.wait_ready(proc, lambda: False, 60, "the widget", [tmp_path / "empty.log", log])
    assert str(err.value) == (
        f"the widget exited at start (code 3): widget: no such config — see {tmp_path / 'empty.log'}"
    )


def test_the_caller_chooses_the_error_and_its_text(tmp_path: Path) -> None:
    log = tmp_path / "widget.log"
    script = "import sys; print('one\\ntwo\\nthree'); sys.exit(4)"
    proc = procs.spawn([sys.executable, "-c", script], log, append=False)
    proc.wait()
    with pytest.raises(LookupError, match=r"^widget gone \(4\): two \| three$"):
        procs.check_alive(
            proc,
            "widget",
            [log],
            lines=2,
            error=LookupError,
            message=lambda name, code, tail: f"{name} gone ({code}): {tail}",
        )


def test_a_child_that_never_gets_ready_is_the_callers_to_report(tmp_path: Path) -> None:
    proc, log = _child(tmp_path)
    try:
        assert not procs.wait_ready(proc, lambda: False, 0.2, "the child", [log])
        assert proc.poll() is None
    finally:
        procs.stop(proc, 60)
