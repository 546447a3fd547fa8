"""`saga run` on the embedded stack: two instances each of two roles as supervised children. Both
instances of each role join its consumer group (scale-out); a SIGKILLed child is restarted;
Ctrl-C stops everything; and a supervisor that is itself SIGKILLed leaves no child behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from infra.embedded.stack import RunningStack
from infra.settings import child_environ, to_environ
from infra.supervisor import pid_alive
from infra.topics import ensure_topics

pytestmark = pytest.mark.integration
GROUPS = {"orchestrator": "orchestrator", "inventory": "adapter-inventory"}


def children_of(pid: int) -> set[int]:
    found = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return {int(p) for p in found.stdout.split()}


def until(what: str, check: Callable[[], Any], timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.1)  # polling processes and the group coordinator
    return result


def members(admin: AdminClient, group: str) -> int:
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    except KafkaException:
        return 0
    if desc.state != ConsumerGroupState.STABLE:
        return 0
    return sum(1 for m in desc.members if m.assignment.topic_partitions)


@pytest.fixture
def supervised(stack: RunningStack) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    settings = stack.settings
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    log = Path(tempfile.mkdtemp(prefix="saga-run-")) / "run.log"
    argv = [sys.executable, "-m", "infra.cli", "run", "--roles", "orchestrator,inventory"]
    argv += ["--instances", "2", "--no-api", "--env-file", str(log.parent / "none.env")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=child_environ(to_environ(settings)), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_saga_run_supervises_scales_and_leaves_nothing_behind(
    stack: RunningStack, supervised: tuple[subprocess.Popen[bytes], Path]
) -> None:
    proc, log = supervised
    assert stack.settings.kafka_bootstrap_servers
    admin = AdminClient({"bootstrap.servers": stack.settings.kafka_bootstrap_servers})
    first = until("4 children", lambda: (c := children_of(proc.pid)) and len(c) == 4 and c)
    for group in GROUPS.values():
        until(f"2 members serving in {group}", lambda g=group: members(admin, g) == 2)

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    replaced = until(
        "the killed child replaced",
        lambda: (c := children_of(proc.pid)) and len(c) == 4 and victim not in c and c,
    )
    text = until("the restart reported", lambda: "restarted (restart 1)" in log.read_text())
    assert text
    assert "stopped (killed by SIGKILL); restarting in 1s" in log.read_text()
    assert len(replaced - first) == 1

    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    assert "stopped; nothing left running." in log.read_text()
    assert not any(pid_alive(p) for p in replaced), [p for p in replaced if pid_alive(p)]
    # Off a terminal the children log JSON, each line labelled with the child that wrote it.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    processes = {line.get("process") for line in lines}
    assert {"inventory-0", "inventory-1", "supervisor"} <= processes, processes


def test_a_killed_supervisor_takes_its_children_with_it(
    supervised: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, _ = supervised
    children = until("4 children", lambda: (c := children_of(proc.pid)) and len(c) == 4 and c)
    proc.kill()  # no chance to clean up: the kernel's parent-death signal must do it
    proc.wait(30)
    until("every child gone", lambda: not any(pid_alive(p) for p in children), timeout_s=60)
