"""Child processes that die with us: the embedded servers must never outlive the engine."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """An embedded service could not be started; the message says why in one line."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `check` until true; fail early, with the log tail, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise ServiceError(f"{what} not ready after {timeout:.0f}s: {_tail(log)}")


def _tail(log: Path | None, lines: int = 5) -> str:
    if log is None or not log.exists():
        return "(no log)"
    text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return " | ".join(text) or "(empty log)"


def run_tool(argv: Sequence[str], *, failure: str) -> None:
    """Run a one-shot set-up command; on failure raise `failure: <last lines of its output>`."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
        raise ServiceError(f"{failure}: {tail}")


def _die_with_parent(uid: int | None) -> Callable[[], None]:
    def preexec() -> None:
        # Linux: SIGTERM the child when the parent dies, even by SIGKILL, so no orphan survives.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # A Ctrl-C in the terminal goes to the whole foreground group; we stop children ourselves
        # in order (so Postgres can shut down cleanly), hence a group of their own.
        os.setpgid(0, 0)
        if uid is not None:
            os.setgid(uid)
            os.setuid(uid)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    run_as_uid: int | None = None,
) -> subprocess.Popen[bytes]:
    if not Path(argv[0]).exists():
        raise ServiceError(f"binary not found: {argv[0]}")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent(run_as_uid),
            close_fds=True,
        )


def stop(
    proc: subprocess.Popen[bytes] | None, *, sig: int = signal.SIGTERM, grace: float = 10.0
) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
