"""A real PostgreSQL for the tests: initdb in a temporary directory, the server on a free loopback
port, a fresh database per test.

PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to the `postgres` user that
Debian's package creates. Durability is off (fsync, synchronous_commit): a test cluster that dies
is thrown away, and creating databases gets several times quicker.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from tests.live_server import ServerProcess

READY = re.compile(r"database system is ready to accept connections")
SUPERUSER = "agentbox"


def _bindir() -> Path:
    """The newest installed server's binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed: `make test-setup` installs postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.port = 0
        self.output: list[str] = []
        self._root = Path(tempfile.mkdtemp(prefix="agentbox-pg-"))
        self._process: ServerProcess | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self._root, owner.pw_uid, owner.pw_gid)
            self._as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}

    def start(self, timeout_s: float = 60) -> PostgresServer:
        bindir = _bindir()
        data = self._root / "data"
        subprocess.run(
            [bindir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale"],
            check=True,
            capture_output=True,
            **self._as,
        )
        self.port = _free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self._root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "400",
        }
        flags = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        self._process = ServerProcess(
            [str(bindir / "postgres"), "-D", str(data), *flags], READY, self.output, **self._as
        )
        if self._process.wait_ready(timeout_s) is None:
            self.stop()
            raise RuntimeError("PostgreSQL did not start:\n" + "".join(self.output))
        return self

    def url(self, database: str) -> str:
        """The SQLAlchemy URL agentbox takes (AGENTBOX_DATABASE_URL)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        """What a test reads straight from the database, to check what the server stored."""
        with psycopg.connect(self._dsn(database)) as connection:
            return connection.execute(sql).fetchall()

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def stop(self) -> None:
        if self._process is not None:
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGINT)
            self._process.stop()
            self._process = None
        with contextlib.suppress(OSError):
            shutil.rmtree(self._root)
