"""The embedded stack's failure modes and shutdown, as an operator meets them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from infra.embedded.process import ServiceError, free_port
from infra.embedded.stack import embedded_stack, reader_isolation
from infra.settings import load_settings

pytestmark = pytest.mark.integration
SERVICE_MARKERS = ("tansu", "kafka.Kafka", "bin/postgres", "redis-server", "localstripe")


def service_children(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if any(k in " ".join(c.cmdline()) for k in SERVICE_MARKERS)]


def test_a_port_in_use_is_a_clear_error_and_nothing_started_stays_running() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        before = {p.pid for p in service_children(os.getpid())}
        # Kafka starts first and succeeds; Postgres then finds its port taken.
        with (
            pytest.raises(ServiceError, match=f"postgres: port {taken} already in use"),
            embedded_stack(load_settings({}), ports={"postgres": taken}),
        ):
            pass
    assert {p.pid for p in service_children(os.getpid())} == before


def test_saga_up_prints_every_url_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    env = {**os.environ}
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "STRIPE_API_BASE"):
        env.pop(var, None)
    up = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "up", "--data-dir", f"/tmp/saga-up-{tmp_path.name}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert up.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("Ctrl-C stops" in x for x in lines):
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        for url in ("127.0.0.1:", "postgresql://", "redis://", "http://127.0.0.1:"):
            assert url in text
        # Workers must read as the broker allows: read_committed, unless Tansu runs (ADR 0009).
        expected = reader_isolation(load_settings())
        assert f"kafka isolation level: {expected}" in text
        children = service_children(up.pid)
        assert len(children) == 4
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        shutil.rmtree(f"/tmp/saga-up-{tmp_path.name}", ignore_errors=True)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
