"""`saga run`: every worker role and the API as supervised child processes of one command.

Each child is an ordinary `saga worker --role R --instance I` (or `saga api`) process, exactly as
it would run alone, so scale-out across machines is the same command with other `--instances`
offsets. The supervisor:

* restarts a child that exits on its own, with exponential backoff (1 s doubling to 30 s; the
  backoff resets once a child has stayed up for a minute), and says why it restarted it;
* on SIGINT/SIGTERM stops every child with SIGTERM (the runtime finishes its batch and leaves its
  group), waits, then SIGKILLs what is left: nothing keeps running after it returns;
* asks the kernel to SIGTERM each child should the supervisor itself die without cleaning up
  (`PR_SET_PDEATHSIG`), so even a SIGKILLed supervisor leaves no orphan consuming partitions;
* prefixes every line a child writes with its name, so one terminal shows the whole engine;
  with `json_lines` (children log JSON), a JSON line gets the name as its `process` key instead,
  so the combined output stays one JSON object per line for a log shipper.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0  # a child up this long starts its next restart from the first backoff
STOP_GRACE_S = 20.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str  # e.g. "payment-0", "api"
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # this child's own variables, over the shared ones


def specs(
    roles: Sequence[str],
    instances: Sequence[int],
    *,
    api: bool,
    metrics_port: int | None = None,
    analytics: bool = False,
) -> list[ChildSpec]:
    """One child per role and instance id, plus the API once (it binds one port), plus
    analytics once (`saga analytics`: its windows live in one process, ADR 0018).

    With `metrics_port`, the k-th worker child serves /metrics on metrics_port+k (0 stays 0:
    each picks a free port); the API serves its own /metrics on API_PORT and gets none."""
    base = (sys.executable, "-m", "infra.cli")
    children = [
        ChildSpec(f"{role}-{i}", (*base, "worker", "--role", role, "--instance", str(i)))
        for role in roles
        for i in instances
    ]
    if metrics_port is not None:
        children = [
            ChildSpec(c.name, c.argv, (("METRICS_PORT", str(metrics_port and metrics_port + k)),))
            for k, c in enumerate(children)
        ]
    if api:
        children.append(ChildSpec("api", (*base, "api")))
    if analytics:
        children.append(ChildSpec("analytics", (*base, "analytics")))
    return children


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel SIGTERMs it when we die.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the SIGTERM on our own shutdown still applies


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = BACKOFF_START_S
    next_start_at: float = 0.0
    threads: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        children: Sequence[ChildSpec],
        env: Mapping[str, str],
        *,
        say: Callable[[str], None],
        out: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stop_grace_s: float = STOP_GRACE_S,
        json_lines: bool = False,
    ) -> None:
        self._children = [_Child(spec) for spec in children]
        self._json_lines = json_lines
        self._env = dict(env)
        self._say = say
        self._out = out or sys.stdout
        self._out_lock = threading.Lock()
        self._clock = clock
        self._stop_grace_s = stop_grace_s
        self._stopping = threading.Event()

    @property
    def pids(self) -> dict[str, int]:
        return {
            c.spec.name: c.proc.pid
            for c in self._children
            if c.proc is not None and c.proc.poll() is None
        }

    def restarts(self) -> dict[str, int]:
        return {c.spec.name: c.restarts for c in self._children}

    def stop(self) -> None:
        """Ask `run` to stop (safe from a signal handler)."""
        self._stopping.set()

    def run(self, *, tick_s: float = 0.2) -> None:
        """Start everything, keep it running until `stop`, then stop everything."""
        try:
            for child in self._children:
                self._start(child)
            while not self._stopping.wait(tick_s):
                self._supervise()
        finally:
            self._stop_all()

    # --- internals -------------------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        child.proc = subprocess.Popen(
            child.spec.argv,
            env={**self._env, **dict(child.spec.env)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        child.started_at = self._clock()
        reader = threading.Thread(
            target=self._relay, args=(child.spec.name, child.proc), daemon=True
        )
        reader.start()
        child.threads = [reader]

    def _relay(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._out_lock:
                print(self._labelled(name, line), file=self._out, flush=True)

    def _labelled(self, name: str, line: str) -> str:
        if self._json_lines and line.startswith("{"):
            try:
                fields = json.loads(line)
            except ValueError:
                fields = None
            if isinstance(fields, dict):
                return json.dumps({"process": name, **fields})
        return f"[{name}] {line}"

    def _supervise(self) -> None:
        now = self._clock()
        for child in self._children:
            proc = child.proc
            if proc is not None and proc.poll() is None:
                if now - child.started_at >= HEALTHY_AFTER_S:
                    child.backoff_s = BACKOFF_START_S
                continue
            if proc is not None:
                # It exited on its own: schedule its successor.
                code = proc.returncode
                why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
                if now - child.started_at >= HEALTHY_AFTER_S:
                    child.backoff_s = BACKOFF_START_S
                child.next_start_at = now + child.backoff_s
                self._say(f"{child.spec.name} stopped ({why}); restarting in {child.backoff_s:g}s")
                child.backoff_s = min(BACKOFF_MAX_S, child.backoff_s * 2)
                child.proc = None
                continue
            if now >= child.next_start_at:
                child.restarts += 1
                self._start(child)
                self._say(f"{child.spec.name} restarted (restart {child.restarts})")

    def _stop_all(self) -> None:
        running = [c for c in self._children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._stop_grace_s
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(f"{child.spec.name} did not stop in {self._stop_grace_s:g}s: SIGKILL")
                child.proc.kill()
                child.proc.wait()
        for child in self._children:
            for thread in child.threads:
                thread.join(5)


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
