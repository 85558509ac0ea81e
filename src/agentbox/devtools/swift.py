"""An S3 server on one machine: OpenStack Swift with its s3api middleware, one node on loopback.

`make test-setup` installs Swift in its own environment (.clients/swift, requirements/swift.txt).
`configure` writes a single-node configuration into a directory (rings with one replica and one
device, tempauth with one user, `mount_check = false`, devices in the same directory) and names the
command line of the proxy (s3api + tempauth) and of the account, container and object servers,
each one process without workers on a free loopback port. The caller runs them and waits with
`wait_healthy`: Swift prints no readiness line. They log to the console when run with `-v`, and to
syslog over UDP on loopback, where nothing listens.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
from botocore.config import Config

from agentbox.devtools import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY = "test:tester"  # tempauth's user test:tester of account AUTH_test
SECRET_KEY = "testing"
REGION = "us-east-1"  # s3api's default location
SERVERS = ("account", "container", "object")

RINGS = """
import sys
from swift.common.ring import RingBuilder

etc, ports = sys.argv[1], sys.argv[2:]
for name, port in zip(("account", "container", "object"), ports):
    builder = RingBuilder(4, 1, 1)  # 16 partitions, one replica, min_part_hours 1
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "d1", "weight": 1.0})
    builder.rebalance()
    builder.get_ring().save(f"{etc}/{name}.ring.gz")
"""

COMMON = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
swift_dir = {etc}
devices = {devices}
mount_check = false
disable_fallocate = true
log_level = WARNING
log_udp_host = 127.0.0.1
log_udp_port = {syslog_port}
"""

BACKEND = """
[pipeline:main]
pipeline = healthcheck {name}-server

[app:{name}-server]
use = egg:swift#{name}

[filter:healthcheck]
use = egg:swift#healthcheck
"""

PROXY = """
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging listing_formats s3api tempauth
    copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
"""

SWIFT_CONF = """[swift-hash]
swift_hash_path_prefix = agentbox-tests
swift_hash_path_suffix = agentbox-tests

[storage-policy:0]
name = default
default = yes
"""


@dataclass(frozen=True)
class SwiftNode:
    """A node configured under `root`: each server's loopback port and command line (with `-v`,
    which logs to the console too), the proxy first."""

    root: Path
    ports: dict[str, int]
    commands: dict[str, list[str]]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}"


def supports_user_xattrs(directory: Path) -> bool:
    """Swift's object server keeps each object's metadata in user xattrs."""
    probe = directory / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.agentbox", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


def configure(root: Path, bindir: Path) -> SwiftNode:
    """Write a node's configuration, rings and device into the existing directory `root`, for
    Swift's scripts in `bindir`."""
    if not (bindir / "swift-proxy-server").exists():
        raise RuntimeError(f"Swift is not installed in {bindir.parent}: run `make test-setup`")
    etc, devices = root / "etc", root / "srv"
    (devices / "d1").mkdir(parents=True)
    etc.mkdir()
    if not supports_user_xattrs(devices):
        raise RuntimeError(f"{devices} does not support user xattrs, which Swift's object server needs")
    ports = {name: free_port() for name in ("proxy", *SERVERS)}
    (etc / "swift.conf").write_text(SWIFT_CONF)
    subprocess.run(
        [str(bindir / "python"), "-c", RINGS, str(etc), *(str(ports[s]) for s in SERVERS)],
        check=True,
        capture_output=True,
    )
    common = {"user": getpass.getuser(), "etc": etc, "devices": devices, "syslog_port": free_port()}
    commands = {}
    for name in ("proxy", *SERVERS):
        conf = etc / f"{name}-server.conf"
        body = PROXY if name == "proxy" else BACKEND.format(name=name)
        conf.write_text(COMMON.format(port=ports[name], **common) + body)
        commands[name] = [str(bindir / f"swift-{name}-server"), str(conf), "-v"]
    return SwiftNode(root, ports, commands)


def wait_healthy(ports: Mapping[str, int], deadline: float) -> None:
    """Until every server answers its healthcheck; RuntimeError naming those silent at the deadline
    (time.monotonic())."""
    pending = dict(ports)
    with httpx.Client(timeout=2.0) as http:
        while pending:
            for name, port in list(pending.items()):
                try:
                    if http.get(f"http://127.0.0.1:{port}/healthcheck").status_code == 200:
                        del pending[name]
                except httpx.TransportError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"Swift's {', '.join(pending)} did not answer")
            if pending:
                time.sleep(0.05)


def s3_client(endpoint: str) -> S3Client:
    """A boto3 S3 client on the node at `endpoint`, as tempauth's user."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def blob_env(endpoint: str, bucket: str, prefix: str = "") -> dict[str, str]:
    """The settings that point agentbox at `bucket` on the node at `endpoint`."""
    path = f"/{prefix}" if prefix else ""
    return {
        "AGENTBOX_BLOB_URL": f"s3://{bucket}{path}?endpoint={endpoint}",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
