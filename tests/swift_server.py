"""A real S3 server for the tests: OpenStack Swift with its s3api middleware, one node on loopback.

`make test-setup` installs Swift in its own environment (.clients/swift, requirements/swift.txt).
SwiftServer writes a single-node configuration into a temporary directory (rings with one replica
and one device, tempauth with one user, `mount_check = false`, devices in the same directory), then
runs the proxy (s3api + tempauth) and the account, container and object servers, each as one
process without workers, on free loopback ports. Their logs go to the collected output (console
logging) and to syslog over UDP on loopback, where nothing listens.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path

import boto3
import httpx
from botocore.config import Config
from mypy_boto3_s3 import S3Client

from tests.live_server import REPO, ServerProcess

SWIFT_BIN = REPO / ".clients" / "swift" / "bin"
ACCESS_KEY = "test:tester"  # tempauth's user test:tester of account AUTH_test
SECRET_KEY = "testing"
REGION = "us-east-1"  # s3api's default location
SERVERS = ("account", "container", "object")
NEVER = re.compile(r"(?!)")  # Swift prints no readiness line: its ports are polled

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


class SwiftServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.output: list[str] = []
        self.ports: dict[str, int] = {}
        self._processes: list[ServerProcess] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}"

    def s3(self) -> S3Client:
        """A boto3 S3 client on this server, as the test's own eyes on the bucket."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self) -> str:
        """A new, empty bucket of its own for a test."""
        name = f"agentbox-{secrets.token_hex(6)}"
        self.s3().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, int]:
        """Every object in the bucket: key → size."""
        listing = self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {o["Key"]: o["Size"] for page in listing for o in page.get("Contents", [])}

    def blob_env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The settings that point agentbox at `bucket` on this server."""
        path = f"/{prefix}" if prefix else ""
        return {
            "AGENTBOX_BLOB_URL": f"s3://{bucket}{path}?endpoint={self.endpoint}",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def start(self, timeout_s: float = 60.0) -> SwiftServer:
        if not (SWIFT_BIN / "swift-proxy-server").exists():
            raise RuntimeError("Swift is not installed in .clients/swift: run `make test-setup`")
        etc, devices = self.root / "etc", self.root / "srv"
        (devices / "d1").mkdir(parents=True)
        etc.mkdir()
        if not supports_user_xattrs(devices):
            raise RuntimeError(f"{devices} does not support user xattrs, which Swift's object server needs")
        self.ports = {name: free_port() for name in ("proxy", *SERVERS)}
        (etc / "swift.conf").write_text(SWIFT_CONF)
        subprocess.run(
            [str(SWIFT_BIN / "python"), "-c", RINGS, str(etc), *(str(self.ports[s]) for s in SERVERS)],
            check=True,
            capture_output=True,
        )
        common = {"user": getpass.getuser(), "etc": etc, "devices": devices, "syslog_port": free_port()}
        for name in ("proxy", *SERVERS):
            conf = etc / f"{name}-server.conf"
            body = PROXY if name == "proxy" else BACKEND.format(name=name)
            conf.write_text(COMMON.format(port=self.ports[name], **common) + body)
            # -v: log to the console as well, which the collected output keeps.
            argv = [str(SWIFT_BIN / f"swift-{name}-server"), str(conf), "-v"]
            self._processes.append(ServerProcess(argv, NEVER, self.output, cwd=self.root))
        try:
            self._wait_ready(time.monotonic() + timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        pending = dict(self.ports)
        with httpx.Client(timeout=2.0) as http:
            while pending:
                for name, port in list(pending.items()):
                    try:
                        if http.get(f"http://127.0.0.1:{port}/healthcheck").status_code == 200:
                            del pending[name]
                    except httpx.TransportError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Swift's {', '.join(pending)} did not answer:\n" + "".join(self.output)
                    )
                if pending:
                    time.sleep(0.05)

    def stop(self) -> None:
        for process in self._processes:
            process.stop()
        self._processes.clear()
