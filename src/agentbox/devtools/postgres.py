"""A throwaway PostgreSQL cluster: initdb in a temporary directory, the server on a loopback port.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user that
Debian's package creates. Durability is off (fsync, synchronous_commit): a development or test
cluster that dies is thrown away, and creating databases gets several times quicker. The caller
runs `server_argv` with Popen's `owner()` arguments and waits for `READY` in its output; SIGINT is
the server's fast shutdown (SIGTERM would wait for every client to leave).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

READY = re.compile(r"database system is ready to accept connections")
SUPERUSER = "agentbox"
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
}


def bindir() -> Path:
    """The newest installed server's binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed: `make test-setup` installs postgresql")
    return Path(found[-1]).parent


def owner() -> dict[str, Any]:
    """Popen's arguments that run initdb and the server as `postgres` when we are root; none otherwise."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def new_root() -> Path:
    """A temporary directory for one cluster, owned by whoever runs its server."""
    root = Path(tempfile.mkdtemp(prefix="agentbox-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    return root


def initdb(root: Path) -> None:
    """A new cluster in root/data with SUPERUSER, trusted on loopback."""
    subprocess.run(
        [
            bindir() / "initdb",
            "-D",
            root / "data",
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        check=True,
        capture_output=True,
        **owner(),
    )


def server_argv(root: Path, port: int) -> list[str]:
    """The server of root's cluster on 127.0.0.1:port, its socket in root, durability off."""
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(root),
        **SETTINGS,
    }
    flags = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
    return [str(bindir() / "postgres"), "-D", str(root / "data"), *flags]


def url(port: int, database: str) -> str:
    """The SQLAlchemy URL agentbox takes (AGENTBOX_DATABASE_URL)."""
    return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{database}"


def dsn(port: int, database: str) -> str:
    """psycopg's connection string for the same database."""
    return f"host=127.0.0.1 port={port} user={SUPERUSER} dbname={database}"


def create_database(port: int, name: str) -> str:
    """A new empty database; its URL."""
    with psycopg.connect(dsn(port, "postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url(port, name)
