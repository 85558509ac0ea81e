"""Every knob of agentbox: one Settings object read from AGENTBOX_* variables and .env."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentbox.fleet.address import parse_fleet_url
from agentbox.llm.catalog import Catalog, load_catalog, shortcut_config
from agentbox.sandbox.config import SandboxConfig, default_pool_size
from agentbox.store.blob_url import S3Location, parse_blob_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTBOX_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("data"), description="Where the SQLite database, uploaded files and sessions live."
    )
    database_url: str = Field(
        "",
        description="Where state lives, as an SQLAlchemy URL: empty for SQLite in the data dir; "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB for a PostgreSQL that several replicas share.",
    )
    replica_lease_s: float = Field(
        30,
        ge=3,
        description="How long a replica's lease lasts without renewal (it renews every third of it): "
        "once a replica has been silent this long, a peer sharing its database fails or restarts the "
        "runs, responses and file ingestions it left active.",
    )
    api_keys: str = Field(
        "",
        description="Comma-separated API keys; requests need 'Authorization: Bearer KEY' or 'api-key: KEY'. "
        "When empty, `agentbox serve` generates one, stores it in the data dir and prints it.",
    )
    identity_header: str = Field(
        "",
        description="When set, GET /msi/token serves the App Service managed-identity protocol to "
        "callers whose X-IDENTITY-HEADER equals this value, handing out 1-hour bearer tokens that "
        "are accepted like API keys (point IDENTITY_ENDPOINT/IDENTITY_HEADER of Azure SDKs at it). "
        "When empty the route does not exist.",
    )
    max_upload_mb: int = Field(
        512,
        gt=0,
        description="Largest file one upload may carry, in MB (OpenAI's limit: 512); past it the upload "
        "is refused with 413 while it streams in, and nothing of it is kept.",
    )
    blob_url: str = Field(
        "",
        description="Where file bytes live. Empty: DATA_DIR/files. s3://BUCKET[/PREFIX]?endpoint=URL"
        "[&region=REGION]: any S3-compatible store (credentials from AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY), with DATA_DIR/blob-cache as a local cache (not bounded yet).",
    )
    model_base_url: str = Field(
        "", description="OpenAI-compatible chat-completions endpoint (e.g. https://api.openai.com/v1)."
    )
    model_api_key: str = Field("", description="API key for the model endpoint.")
    model_vision: bool = Field(
        False, description="AGENTBOX_MODEL_BASE_URL's models take images in user messages."
    )
    model_context_window: int | None = Field(
        None,
        gt=0,
        description="AGENTBOX_MODEL_BASE_URL's models' context window in tokens; the prompt is cut to fit "
        "(default: unknown, not cut ahead).",
    )
    model_native_tools: bool = Field(
        True,
        description="AGENTBOX_MODEL_BASE_URL's models call tools natively; off: they are asked for "
        "```python blocks, which run as code calls.",
    )
    models_file: Path | None = Field(
        None,
        description="A TOML file mapping model names (or globs) to providers and their options "
        "(docs/models.md); names it does not match go to AGENTBOX_MODEL_BASE_URL.",
    )
    model_timeout_s: float = Field(120.0, description="Timeout of one model request.")
    embeddings_base_url: str = Field(
        "",
        description="OpenAI-compatible /v1/embeddings endpoint for file_search (OpenAI, Azure, vLLM, "
        "Ollama, llama.cpp), e.g. http://localhost:8080/v1. When set, vector store chunks are embedded "
        "and search fuses dense and full-text ranking; when empty, full text alone ranks.",
    )
    embeddings_model: str = Field(
        "text-embedding-3-small", description="The model AGENTBOX_EMBEDDINGS_BASE_URL is asked for."
    )
    embeddings_api_key: str = Field("", description="API key for the embeddings endpoint.")
    embeddings_timeout_s: float = Field(60.0, gt=0, description="Timeout of one embeddings request.")
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
    session_memory_mb: int = Field(1024, description="Memory limit of one session (hard cgroup limit).")
    session_pids_max: int = Field(256, description="Processes and threads one session may have.")
    # One core by default: one busy session must not starve every other session and the server.
    session_cpus: float = Field(1.0, ge=0, description="CPU quota of one session in cores (0: no cap).")
    session_nofile: int = Field(1024, description="Open files one session process may have.")
    session_tmp_mb: int = Field(256, description="Size of each session's /tmp.")
    session_inodes: int = Field(
        100_000, description="Files and directories one session's /mnt/data may hold."
    )
    session_idle_s: float = Field(1800, description="A session idle this long is torn down (variables lost).")
    session_max_s: float = Field(3600, description="A session this old is torn down (variables lost).")
    sandbox: Literal["bubblewrap", "gvisor"] = Field(
        "bubblewrap",
        description="Sandbox backend: bubblewrap (default) or gvisor (runsc run, stronger, slower start).",
    )
    pool_size: int | None = Field(
        None,
        description="Sandboxes kept started ahead for new threads (kernel up, libraries imported); "
        "default: sized to the machine (forked bubblewrap kernels: one per 768 MiB of RAM, 64 at most; "
        "otherwise one per CPU core).",
    )
    fork_server: bool = Field(
        True,
        description="bubblewrap: fork each session's kernel from one process that imported numpy, pandas "
        "and matplotlib once (fast starts, shared memory); off: every kernel starts its own Python.",
    )
    container_idle_minutes: int = Field(
        20,
        ge=1,
        description="A container (Responses/Containers API) unused this long expires for good, unless it "
        "was created with its own expires_after.minutes (OpenAI's default: 20).",
    )
    container_memory_max_mb: int | None = Field(
        None,
        ge=0,
        description="The largest memory a container may ask for (memory_limit tiers 1g=1024, 4g, 16g, "
        "64g MiB); a larger tier is refused. Default: the host's MemTotal.",
    )
    run_expires_s: int = Field(600, description="A run not finished this long after creation ends expired.")
    keep_alive_s: int = Field(
        120,
        ge=1,
        description="How long an idle HTTP connection is kept open. Longer than clients keep theirs "
        "(httpx/openai-python 5 s, Node 4 s, Go 90 s), so none sends on a connection the server is closing.",
    )
    sandbox_runtime: Path = Field(
        Path(".runtime"), description="The sandbox's Python environment (built by make setup)."
    )
    sandbox_uid_base: int = Field(
        1_200_000,
        ge=1001,
        description="Sessions run as host uids from this one up (one per live session, the fork server one "
        "below): give each sandbox node sharing a machine its own range.",
    )
    sandbox_start_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long a sandbox, or the fork server behind them, may take to start before the start "
        "fails: raise it on a slow or emulated host.",
    )
    fleet: str = Field(
        "",
        description="Empty: sessions run on this machine. ray://HOST:PORT: they run on the Ray cluster whose "
        "head's GCS listens there, on the nodes offering the agentbox_node resource (docs/scale-out.md); "
        "needs AGENTBOX_DATABASE_URL and AGENTBOX_BLOB_URL.",
    )
    fleet_checkpoint_mb: int = Field(
        512,
        ge=0,
        description="A fleet node archives a session's /mnt/data to the object store after each cell, up to "
        "this size; a larger one is not archived, and is lost with its node.",
    )
    allow_weak_sandbox: bool = Field(
        False, description="Start even when the sandbox is weaker than configured."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Server log on stderr: text lines, or json: one JSON object per line, with one line "
        "per HTTP request and per run/response status change (docs/operations.md).",
    )
    metrics_require_key: bool = Field(
        False,
        description="GET /metrics (Prometheus) asks for an API key like /v1; off: it is open, as "
        "scrapers usually expect (it shows counts and timings, never ids or content).",
    )

    @field_validator("blob_url")
    @classmethod
    def _blob_url_names_a_bucket(cls, url: str) -> str:
        parse_blob_url(url)  # BlobUrlError is a ValueError: reported as a bad setting
        return url

    @field_validator("fleet")
    @classmethod
    def _fleet_url_names_a_head(cls, url: str) -> str:
        if url:
            parse_fleet_url(url)  # a ValueError: reported as a bad setting
        return url

    def blob_location(self) -> S3Location | None:
        """The S3 bucket of AGENTBOX_BLOB_URL; None: the local directory."""
        return parse_blob_url(self.blob_url)

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    def model_catalog(self) -> Catalog:
        """The models file and the shortcut as one catalog; raises ModelsFileError on a bad file."""
        shortcut = shortcut_config(
            self.model_base_url,
            self.model_api_key,
            timeout_s=self.model_timeout_s,
            vision=self.model_vision,
            context_window=self.model_context_window,
            native_tools=self.model_native_tools,
        )
        return load_catalog(self.models_file, shortcut)

    def sandbox_config(self) -> SandboxConfig:
        return SandboxConfig(
            sessions_dir=self.data_dir.resolve() / "sessions",
            uid_base=self.sandbox_uid_base,
            runtime_dir=self.sandbox_runtime.resolve(),
            start_timeout_s=self.sandbox_start_timeout_s,
            exec_timeout_s=self.exec_timeout_s,
            interrupt_grace_s=self.interrupt_grace_s,
            output_limit_bytes=self.output_limit_bytes,
            session_disk_mb=self.session_disk_mb,
            memory_mb=self.session_memory_mb,
            pids_max=self.session_pids_max,
            cpus=self.session_cpus or None,
            nofile=self.session_nofile,
            tmp_size_mb=self.session_tmp_mb,
            session_inodes=self.session_inodes,
            session_idle_s=self.session_idle_s,
            session_max_s=self.session_max_s,
            backend=self.sandbox,
            pool_size=self.pool_size
            if self.pool_size is not None
            else default_pool_size(self.sandbox, self.fork_server),
            allow_weak=self.allow_weak_sandbox,
            fork_server=self.fork_server,
        )
