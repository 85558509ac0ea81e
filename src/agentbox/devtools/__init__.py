"""Servers a developer runs beside agentbox on one machine, all on loopback: a PostgreSQL and an
S3 store (Swift with s3api), as the tests start them (tests/postgres_server.py,
tests/swift_server.py) and `scripts/dev-cluster` keeps them running with several replicas
(cluster.py). The server itself never imports this package."""

from __future__ import annotations

import re
import socket

READY = re.compile(r"agentbox ready at (https?://\S+)/v1")
"""The line `agentbox serve` prints once it serves (cli.py): its base URL."""


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
