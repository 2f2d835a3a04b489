"""Child processes we start and stop ourselves: servers, the recommender, the API.

:func:`spawn` starts one with its output in a log file; :func:`wait_ready` waits until a
readiness check holds, raising the caller's error with the log's tail if the process
died first; :func:`stop` (and :func:`stop_all`) sends SIGTERM, waits, then SIGKILLs.
Every call site keeps its own timeouts and messages: they are parameters here.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from floorwalker.errors import ServiceStartError

#: A child started by :func:`spawn`.
Process = subprocess.Popen[bytes]


def spawn(
    argv: Sequence[str],
    log: Path,
    *,
    append: bool = True,
    new_session: bool = True,
    cwd: Path | None = None,
) -> Process:
    """Start ``argv`` with stdin closed and stdout and stderr in ``log`` (appended, or
    written afresh without ``append``). In a session of its own (``new_session``) a
    Ctrl-C in our terminal does not reach it: we stop it ourselves."""
    with log.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=new_session,
        )


def log_tail(path: Path, lines: int = 1) -> str:
    """The last lines of a log file joined on one line ("" if it cannot be read)."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def check_alive(
    proc: Process,
    name: str,
    logs: Sequence[Path] = (),
    *,
    lines: int = 1,
    error: Callable[[str], Exception] = ServiceStartError,
    message: Callable[[str, int, str], str] | None = None,
) -> None:
    """Raise ``error`` if ``proc`` has exited.

    The text is ``message(name, exit code, tail)``, the tail being the last ``lines`` of
    the first of ``logs`` that has any; by default it names the process, the code, the
    tail and the first log."""
    code = proc.poll()
    if code is None:
        return
    tail = next((t for t in (log_tail(log, lines) for log in logs) if t), "")
    if message is not None:
        raise error(message(name, code, tail))
    see = f" — see {logs[0]}" if logs else ""
    raise error(f"{name} exited at start (code {code}): {tail}{see}")


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    """Call ``predicate`` every ``poll`` seconds until it holds (True) or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def wait_ready(
    proc: Process,
    ready: Callable[[], bool],
    timeout: float,
    name: str,
    logs: Sequence[Path] = (),
    *,
    poll: float = 0.05,
    lines: int = 1,
    error: Callable[[str], Exception] = ServiceStartError,
    message: Callable[[str, int, str], str] | None = None,
) -> bool:
    """Wait until ``ready()`` holds (True) or ``timeout`` passed (False); if ``proc`` exits
    first, raise as :func:`check_alive` does. A timeout is the caller's to report."""

    def alive_and_ready() -> bool:
        check_alive(proc, name, logs, lines=lines, error=error, message=message)
        return ready()

    return wait_until(alive_and_ready, timeout, poll)


def stop(proc: Process, timeout: float) -> None:
    """SIGTERM (if it still runs), wait up to ``timeout`` s, then SIGKILL."""
    stop_all([proc], timeout)


def stop_all(procs: Iterable[Process], timeout: float) -> None:
    """:func:`stop` for several: all get SIGTERM first, then each ``timeout`` s to exit."""
    children = list(procs)
    for proc in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in children:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
