"""A real S3 server for the tests: OpenStack Swift with its s3api middleware, one node on loopback.

agentbox.devtools.swift writes the node's configuration into a temporary directory (scripts/dev-cluster
shares it); SwiftServer runs the proxy and the account, container and object servers, their logs
collected into its output, and gives the tests their own eyes on the buckets.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from mypy_boto3_s3 import S3Client

from agentbox.devtools import swift
from tests.live_server import REPO, ServerProcess

SWIFT_BIN = REPO / ".clients" / "swift" / "bin"
NEVER = re.compile(r"(?!)")  # Swift prints no readiness line: its ports are polled


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
        return swift.s3_client(self.endpoint)

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
        return swift.blob_env(self.endpoint, bucket, prefix)

    def start(self, timeout_s: float = 60.0) -> SwiftServer:
        node = swift.configure(self.root, SWIFT_BIN)
        self.ports = node.ports
        for argv in node.commands.values():
            self._processes.append(ServerProcess(argv, NEVER, self.output, cwd=self.root))
        try:
            swift.wait_healthy(self.ports, time.monotonic() + timeout_s)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}:\n" + "".join(self.output)) from error
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in self._processes:
            process.stop()
        self._processes.clear()
