"""The composition root: builds store, blobs, model, sandbox and engine, and mounts the API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Response

from agentbox import metrics, web
from agentbox.access_tokens import TokenSigner
from agentbox.api import (
    assistants,
    azure,
    containers,
    conversations,
    errors,
    execs,
    files,
    foundry,
    mcp,
    messages,
    models,
    responses,
    runs,
    threads,
    tokens,
    vector_store_files,
    vector_stores,
)
from agentbox.api.deps import require_key
from agentbox.config import Settings
from agentbox.engine.assistants import AssistantsRunner
from agentbox.engine.containers import ContainerService
from agentbox.engine.conversations import ConversationService
from agentbox.engine.event_journal import EventJournal
from agentbox.engine.events import RunEvents
from agentbox.engine.execs import ExecService
from agentbox.engine.loop import AgentLoop, LoopLimits
from agentbox.engine.replicas import Replica
from agentbox.engine.responses.service import ResponsesService
from agentbox.engine.runs import RunEngine
from agentbox.engine.vector_stores import VectorStoreService
from agentbox.errors import SandboxUnavailable
from agentbox.fleet import Sandboxes
from agentbox.llm.router import ModelRouter
from agentbox.logs import AccessLog
from agentbox.retrieval.embeddings import Embedder
from agentbox.sandbox import SessionManager
from agentbox.store.blob_url import S3Location
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store

# The Responses generation's routers: /v1 carries them, and so do Foundry's OpenAI-client prefixes
# (api/foundry.py), there beside /files. A new one is added here and nowhere else.
RESPONSES_MODULES = (responses, conversations, containers)
# Vector stores serve both generations: /v1, the classic Azure prefixes and Foundry's.
VECTOR_STORE_MODULES = (vector_stores, vector_store_files)


def open_blobs(location: S3Location | None, data_dir: Path, max_file_bytes: int) -> BlobStore:
    """DATA_DIR/files, or the bucket with DATA_DIR/blob-cache as its cache."""
    if location is None:
        return BlobStore(data_dir / "files", max_file_bytes)
    from agentbox.store.s3_blobs import S3BlobStore  # boto3 is imported only when it is used

    return S3BlobStore(location, data_dir / "blob-cache", max_file_bytes)


def open_sandboxes(settings: Settings, store: Store) -> Sandboxes:
    """This machine's sessions, or the Ray fleet's (AGENTBOX_FLEET), which needs shared state and files."""
    if not settings.fleet:
        return SessionManager(settings.sandbox_config())
    location = settings.blob_location()
    if location is None or store.dialect == "sqlite":
        raise SandboxUnavailable(
            "AGENTBOX_FLEET needs AGENTBOX_DATABASE_URL (PostgreSQL) and AGENTBOX_BLOB_URL (an S3 bucket): "
            "every replica finds a session's node in the database, and every node its files in the bucket."
        )
    from agentbox.fleet.ray_fleet import RayFleet  # Ray is imported only when it is used
    from agentbox.store.fleet_sessions import FleetSessions

    return RayFleet(settings.fleet, FleetSessions(store), location, settings.fleet_checkpoint_mb << 20)


def build_app(
    settings: Settings, api_keys: frozenset[str], on_ready: Callable[[], None] | None = None
) -> FastAPI:
    data_dir = settings.data_dir.resolve()
    store = Store(settings.database_url or data_dir / "agentbox.sqlite3")
    blobs = open_blobs(settings.blob_location(), data_dir, settings.max_upload_mb << 20)
    blobs.check()
    model = ModelRouter(settings.model_catalog(), settings.model_timeout_s)
    sandbox = open_sandboxes(settings, store)
    metrics.watch_sessions(sandbox.pool_statistics)
    container_service = ContainerService(
        store,
        blobs,
        sandbox,
        idle_minutes=settings.container_idle_minutes,
        memory_max_mb=settings.container_memory_max_mb,
    )
    embedder = (
        Embedder(
            settings.embeddings_base_url,
            settings.embeddings_model,
            settings.embeddings_api_key,
            timeout_s=settings.embeddings_timeout_s,
        )
        if settings.embeddings_base_url
        else None
    )
    replica = Replica(store, settings.replica_lease_s)
    vector_store_service = VectorStoreService(store, blobs, embedder, replica)
    # Replicas sharing the database write every event there too, so a client streams from any of them.
    events = RunEvents(EventJournal(store) if replica.shared else None)
    loop = AgentLoop(
        model, sandbox, LoopLimits(max_tool_steps=settings.max_tool_steps), searcher=vector_store_service
    )
    engine = RunEngine(
        store,
        AssistantsRunner(store, blobs, loop, events, vector_stores=vector_store_service),
        events,
        replica,
        run_ttl_s=settings.run_expires_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.migrate()
        await replica.start()
        await sandbox.start()
        await container_service.start()
        await vector_store_service.start()
        try:
            await app.state.responses.start()
            async with engine.open():
                replica.watch([engine.recover, app.state.responses.recover, vector_store_service.recover])
                if on_ready is not None:
                    on_ready()
                yield
        finally:
            await app.state.responses.aclose()
            await vector_store_service.aclose()
            if events.journal is not None:
                await events.journal.aclose()
            await replica.aclose()  # once nothing here works on what it owns: peers take it over
            await container_service.aclose()
            await sandbox.aclose()
            await model.aclose()
            store.close()

    app = FastAPI(title="agentbox", version="0.1.0", lifespan=lifespan)
    app.state.store = store
    app.state.blobs = blobs
    app.state.sandbox = sandbox
    app.state.engine = engine
    app.state.containers = container_service
    app.state.vector_stores = vector_store_service
    app.state.execs = ExecService(container_service, sandbox)
    app.state.conversations = conversation_service = ConversationService(store)
    app.state.responses = ResponsesService(
        store,
        loop,
        engine,
        events,
        container_service,
        conversation_service,
        ttl_s=settings.run_expires_s,
        blobs=blobs,
        replica=replica,
    )
    app.state.models = model
    app.state.api_keys = api_keys
    # The managed-identity route and the tokens it signs exist only when asked for.
    app.state.identity_header = settings.identity_header
    app.state.token_signer = TokenSigner.from_data_dir(data_dir) if settings.identity_header else None
    errors.install(app)

    classic = APIRouter(dependencies=[Depends(require_key)])
    # runs first: its POST /threads/runs must win over threads' POST /threads/{thread_id}.
    for module in (files, assistants, runs, threads, messages, *VECTOR_STORE_MODULES):
        classic.include_router(module.router)
    api = APIRouter(dependencies=[Depends(require_key)])
    api.include_router(classic)
    for module in RESPONSES_MODULES:
        api.include_router(module.router)
    api.include_router(models.router)  # what the models file configures, as OpenAI lists models
    api.include_router(execs.router)  # an agentbox extension: /v1 only, not on Foundry's prefixes
    app.include_router(api, prefix="/v1")
    mcp.mount(app)  # the MCP server at /mcp, same keys as /v1; its sessions run in the lifespan
    azure.mount(app, classic)  # the classic agents' prefixes carry the Assistants generation only
    foundry.mount(app, [module.router for module in (files, *RESPONSES_MODULES, *VECTOR_STORE_MODULES)])
    if settings.identity_header:
        app.include_router(tokens.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Prometheus scrapes without a key unless told otherwise (docs/operations.md).
    @app.get(
        "/metrics",
        include_in_schema=False,
        dependencies=[Depends(require_key)] if settings.metrics_require_key else [],
    )
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    web.mount(app)  # the playground at /, which calls only /v1 with the user's key
    if settings.log_format == "json":
        app.add_middleware(AccessLog)  # one JSON line per request (logs.py)
    return app
