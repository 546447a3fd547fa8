"""Worker roles as `saga worker --role R` subprocesses, as production runs them, for tests that
stop them with real signals (SIGTERM, SIGKILL) and wait until each successor serves.

Used by tests/e2e/test_restart_under_load.py and the chaos suite (tests/chaos/)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import ConsumerGroupState

from infra.settings import Settings
from tests.group_probe import GroupProbe

# Every kind of worker `saga worker` runs on the money path. The notification adapter is not
# among them: nothing wires it by default (infra/adapters_wiring.py).
ROLES = ("orchestrator", "inventory", "tax", "shipping", "payment", "notifier", "fulfilment")
GROUPS = {
    role: role if role in ("orchestrator", "notifier", "fulfilment") else f"adapter-{role}"
    for role in ROLES
}  # each role's consumer group (infra/bootstrap.py names them)


@dataclass
class Fleet:
    """One subprocess per role, as `saga worker --role R` runs in production."""

    env: dict[str, str]
    logdir: Path
    probe: GroupProbe  # who is in a group, asked from a child process (tests/group_probe.py)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: int = 0
    # role -> environment overrides for that role only (e.g. the payment worker's Stripe base)
    role_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # Workers that exited on their own and were started again, as `saga run` or Kubernetes
    # would: (monotonic time, role, return code, the last lines of its log).
    exits: list[tuple[float, str, int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _supervising: threading.Event = field(default_factory=threading.Event)

    def start(self, role: str) -> None:
        self.starts += 1
        log = (self.logdir / f"{role}-{self.starts}.log").open("wb")
        argv = [sys.executable, "-m", "infra.cli", "worker", "--role", role, "--instance", "0"]
        env = {**self.env, **self.role_env.get(role, {})}
        self.procs[role] = subprocess.Popen(argv, env=env, stderr=log, stdout=log)
        log.close()

    def restart(self, role: str, sig: signal.Signals) -> None:
        """Stop `role` with `sig` and start its successor; returns once the successor owns the
        role's partitions, so the next restart hits a worker that is serving."""
        with self._lock:
            proc = self.procs[role]
            assert proc.poll() is None, f"{role} died on its own: {self.log_tail(role)}"
            before = {member for member, _ in self.members(role)[1]}
            proc.send_signal(sig)
            proc.wait(30)  # SIGTERM: the runtime finishes its batch and leaves the group
            self.start(role)
        self.wait_serving(role, not_members=before)

    def supervise(self) -> None:
        """From now until `stop`, a worker that exits on its own is started again after a
        second, as the production supervisors do; each exit is kept in `exits`."""
        self._supervising.set()
        threading.Thread(target=self._watch, name="fleet-supervisor", daemon=True).start()

    def _watch(self) -> None:
        while self._supervising.is_set():
            with self._lock:
                for role, proc in list(self.procs.items()):
                    code = proc.poll()
                    if code is not None and self._supervising.is_set():
                        tail = self.log_tail(role)[-600:]
                        self.exits.append((time.monotonic(), role, code, tail))
                        self.start(role)
            time.sleep(1.0)  # the supervisor's restart backoff, not a wait for a condition

    def members(self, role: str) -> tuple[ConsumerGroupState, list[tuple[str, int]]]:
        return self.probe.describe(GROUPS[role])

    def wait_serving(self, role: str, not_members: set[str], deadline_s: float = 60) -> None:
        """Until one new member holds every partition of the role's group. After a SIGKILL
        that waits out the dead member's session timeout, as a real deployment would."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            state, members = self.members(role)
            if (
                state == ConsumerGroupState.STABLE
                and len(members) == 1
                and members[0][0] not in not_members
                and members[0][1] > 0
            ):
                return
            assert self.procs[role].poll() is None, f"{role} exited: {self.log_tail(role)}"
            time.sleep(0.1)  # polling the group coordinator, not waiting for time to pass
        raise AssertionError(f"{role} not serving within {deadline_s}s: {self.members(role)}")

    def stop(self) -> None:
        self._supervising.clear()
        with self._lock:
            self._stop_all()
        self.probe.close()

    def _stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def log_tail(self, role: str) -> str:
        logs = sorted(self.logdir.glob(f"{role}-*.log"), key=lambda p: p.stat().st_mtime)
        return logs[-1].read_text(errors="replace")[-2000:] if logs else ""

    def crashed(self) -> dict[str, str]:
        return {r: self.log_tail(r) for r, p in self.procs.items() if p.poll() is not None}


def worker_env(settings: Settings, database_url: str) -> dict[str, str]:
    """The environment `saga worker` reads, pointing at the test's stack and database."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "KAFKA_ISOLATION_LEVEL": settings.kafka_isolation_level,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.redis_url or "",
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "STRIPE_API_KEY": settings.stripe_api_key or "",
        "SMTP_URL": settings.smtp_url or "",
        "SAGA_PARTITIONS": str(settings.partitions),
        "LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def fleet(
    settings: Settings,
    database_url: str,
    roles: Iterable[str] = ROLES,
    role_env: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[Fleet]:
    """Every role in `roles` started and serving; all stopped on the way out."""
    roles = tuple(roles)
    env = worker_env(settings, database_url)
    with tempfile.TemporaryDirectory(prefix="fleet-workers-") as logdir:
        probe = GroupProbe(settings.kafka_bootstrap_servers or "")
        overrides = {r: dict(e) for r, e in (role_env or {}).items()}
        workers = Fleet(env, Path(logdir), probe, role_env=overrides)
        try:
            for role in roles:
                workers.start(role)
            for role in roles:
                workers.wait_serving(role, not_members=set())
            yield workers
        finally:
            workers.stop()
