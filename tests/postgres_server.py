"""A real PostgreSQL for the tests: initdb in a temporary directory, the server on a free loopback
port, a fresh database per test. The cluster's set-up (as `postgres` when root, durability off) is
agentbox.devtools.postgres, which scripts/dev-cluster shares.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from typing import Any

import psycopg

from agentbox.devtools import free_port, postgres
from tests.live_server import ServerProcess


class PostgresServer:
    def __init__(self) -> None:
        self.port = 0
        self.output: list[str] = []
        self._root = postgres.new_root()
        self._process: ServerProcess | None = None

    def start(self, timeout_s: float = 60) -> PostgresServer:
        postgres.initdb(self._root)
        self.port = free_port()
        argv = postgres.server_argv(self._root, self.port)
        self._process = ServerProcess(argv, postgres.READY, self.output, **postgres.owner())
        if self._process.wait_ready(timeout_s) is None:
            self.stop()
            raise RuntimeError("PostgreSQL did not start:\n" + "".join(self.output))
        return self

    def url(self, database: str) -> str:
        """The SQLAlchemy URL agentbox takes (AGENTBOX_DATABASE_URL)."""
        return postgres.url(self.port, database)

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        return postgres.create_database(self.port, name)

    def query(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        """What a test reads straight from the database, to check what the server stored."""
        with psycopg.connect(postgres.dsn(self.port, database)) as connection:
            return connection.execute(sql).fetchall()

    def stop(self) -> None:
        if self._process is not None:
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGINT)
            self._process.stop()
            self._process = None
        with contextlib.suppress(OSError):
            shutil.rmtree(self._root)
