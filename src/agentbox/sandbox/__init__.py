"""The sandbox: per-thread sessions running a persistent Python kernel in bubblewrap."""

from agentbox.sandbox.config import SandboxConfig
from agentbox.sandbox.execution import CellError, Execution, ExecutionStatus, InputFile
from agentbox.sandbox.manager import SessionManager
from agentbox.sandbox.names import safe_name

__all__ = [
    "CellError",
    "Execution",
    "ExecutionStatus",
    "InputFile",
    "SandboxConfig",
    "SessionManager",
    "safe_name",
]
