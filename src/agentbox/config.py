"""Every knob of agentbox: one Settings object read from AGENTBOX_* variables and .env."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentbox.sandbox.config import SandboxConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTBOX_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("data"), description="Where the SQLite database, uploaded files and sessions live."
    )
    api_keys: str = Field(
        "",
        description="Comma-separated API keys; requests need 'Authorization: Bearer KEY' or 'api-key: KEY'. "
        "When empty, `agentbox serve` generates one, stores it in the data dir and prints it.",
    )
    model_base_url: str = Field(
        "", description="OpenAI-compatible chat-completions endpoint (e.g. https://api.openai.com/v1)."
    )
    model_api_key: str = Field("", description="API key for the model endpoint.")
    model_timeout_s: float = Field(120.0, description="Timeout of one model request.")
    exec_timeout_s: float = Field(
        60.0, description="Wall clock per code cell; past it the cell is interrupted."
    )
    interrupt_grace_s: float = Field(
        3.0, description="Time an interrupted cell gets before its session is killed."
    )
    max_tool_steps: int = Field(12, description="Most code executions in one run before it fails.")
    output_limit_bytes: int = Field(
        100_000, description="stdout/stderr kept per cell (the rest is cut with a marker)."
    )
    session_disk_mb: int = Field(512, description="Size of each session's /mnt/data.")
    session_memory_mb: int = Field(1024, description="Memory limit of one session.")
    sandbox_runtime: Path = Field(
        Path(".runtime"), description="The sandbox's Python environment (built by make setup)."
    )
    allow_weak_sandbox: bool = Field(
        False, description="Start even when the sandbox is weaker than configured."
    )

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    def sandbox_config(self) -> SandboxConfig:
        return SandboxConfig(
            sessions_dir=self.data_dir.resolve() / "sessions",
            runtime_dir=self.sandbox_runtime.resolve(),
            exec_timeout_s=self.exec_timeout_s,
            interrupt_grace_s=self.interrupt_grace_s,
            output_limit_bytes=self.output_limit_bytes,
            session_disk_mb=self.session_disk_mb,
            memory_mb=self.session_memory_mb,
            allow_weak=self.allow_weak_sandbox,
        )
