"""Where sandbox sessions run: this machine's SessionManager, or a fleet of Ray nodes (ray_fleet).

The engine sees one interface, `Sandboxes`; SessionManager has it, and so does RayFleet, which runs
each key's session on a node of a Ray cluster (AGENTBOX_FLEET).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from agentbox.sandbox import Execution, InputFile
from agentbox.sandbox.kernel import OutputCallback


class Sandboxes(Protocol):
    """One sandbox session per key: what the engine calls (SessionManager documents each method)."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def refusal(self) -> str | None: ...

    def isolation_report(self) -> list[tuple[str, bool, str]]: ...

    def pool_statistics(self) -> dict[str, int]: ...

    async def execute(
        self,
        key: str,
        code: str,
        files: Sequence[InputFile] = (),
        *,
        timeout_s: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> Execution: ...

    async def interrupt(self, key: str) -> bool: ...

    async def configure(
        self, key: str, *, memory_mb: int | None = None, idle_s: float | None = None
    ) -> None: ...

    def touch(self, key: str) -> None: ...

    async def close(self, key: str) -> None: ...

    async def copy_file_out(self, key: str, name: str, target: Path, max_bytes: int = 512 << 20) -> int: ...

    async def remove_file(self, key: str, name: str) -> bool: ...
