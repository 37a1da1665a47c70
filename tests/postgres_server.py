"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's server binaries, a temp
directory, loopback on a free port, its unix socket in the temp directory.

``MARROW_TRIAGE_TEST_PG_URL`` (a server URL whose user may create databases) is used
instead when set. Run as root, the cluster runs as the ``postgres`` user (or ``nobody``):
the server refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

URL_ENV = "MARROW_TRIAGE_TEST_PG_URL"
BIN_ENV = "MARROW_TRIAGE_PG_BIN"
HOW_TO = ("PostgreSQL tests need a server: install Debian's postgresql package "
          "(apt-get install postgresql; .ci/run does) or set MARROW_TRIAGE_TEST_PG_URL")


def server_bin() -> Path | None:
    """The directory of initdb and pg_ctl, or None when the server is not installed."""
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def available() -> bool:
    """True when tests can reach a PostgreSQL server (given, or one they can start)."""
    return bool(os.environ.get(URL_ENV)) or server_bin() is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresCluster:
    """``with PostgresCluster() as pg: url = pg.create_database()``.

    ``durable=False`` turns fsync off (tests: the server is never crashed, only clients);
    benchmarks keep it on.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.given = os.environ.get(URL_ENV)
        self.dir: Path | None = None
        self.url = self.given or ""
        self._user: str | None = None

    def __enter__(self) -> PostgresCluster:
        if self.given:
            return self
        bindir = server_bin()
        if bindir is None:
            raise RuntimeError(HOW_TO)
        self.dir = Path(tempfile.mkdtemp(prefix="marrow-pg-"))
        if os.geteuid() == 0:
            self._user = _unprivileged_user()
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        data, port = self.dir / "data", _free_port()
        self._run([str(bindir / "initdb"), "-D", str(data), "-U", "marrow", "--auth=trust",
                   "-E", "UTF8", "--no-locale", "--no-sync"])
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                   f"-c unix_socket_directories={self.dir} -c max_connections=200 "
                   f"-c fsync={'on' if self.durable else 'off'} -c shared_buffers=128MB")
        self._run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"),
                   "-o", options, "-w", "-t", "60", "start"])
        self._bindir = bindir
        self.url = f"postgresql://marrow@127.0.0.1:{port}/postgres"
        return self

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, user=self._user, cwd=self.dir, capture_output=True,
                              text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = (self.dir / "log") if self.dir else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {done.stderr.strip()}\n{tail}")

    def create_database(self) -> str:
        """A fresh, empty database on the server; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rpartition("/")[2]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.given or self.dir is None:
            return
        try:
            self._run([str(self._bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m",
                       "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no postgres or nobody user to run the server as")
