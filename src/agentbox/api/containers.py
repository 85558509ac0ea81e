"""/containers and /containers/{id}/files: the Containers API (spec/responses.md §3)."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from agentbox.api import wire
from agentbox.api.deps import ContainersDep
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.files import clean_filename, content_disposition
from agentbox.api.listing import ListDep
from agentbox.api.uploads import UPLOAD_RESPONSES, upload_form
from agentbox.engine.containers import MAX_MINUTES, data_name
from agentbox.errors import InvalidRequest
from agentbox.store.records import ContainerFileRecord, ContainerRecord

router = APIRouter(tags=["containers"], responses=ERROR_RESPONSES)

MemoryLimit = Literal["1g", "4g", "16g", "64g"]


# --- request bodies -------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ExpiresAfterParam(_Body):
    anchor: Literal["last_active_at"]
    minutes: int = Field(ge=1, le=MAX_MINUTES)


class NetworkPolicyParam(_Body):
    type: Literal["disabled", "allowlist"]
    allowed_domains: list[str] | None = None


class CreateContainer(_Body):
    name: str
    file_ids: list[str] = Field(default_factory=list)
    expires_after: ExpiresAfterParam | None = None
    memory_limit: MemoryLimit | None = None
    network_policy: NetworkPolicyParam | None = None
    skills: list[dict[str, Any]] | None = None


class AddFileById(_Body):
    file_id: str


# --- wire objects ---------------------------------------------------------------------------------
class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    minutes: int


class NetworkPolicy(BaseModel):
    type: Literal["disabled"] = "disabled"
    """Sandboxes have no network at all."""


class ContainerObject(BaseModel):
    id: str
    object: Literal["container"] = "container"
    name: str
    created_at: int
    status: Literal["running", "expired"]
    last_active_at: int
    expires_after: ExpiresAfter
    memory_limit: MemoryLimit
    network_policy: NetworkPolicy


class ContainerFileObject(BaseModel):
    id: str
    object: Literal["container.file"] = "container.file"
    container_id: str
    created_at: int
    bytes: int
    path: str
    source: Literal["user", "assistant"]


def container_object(c: ContainerRecord) -> ContainerObject:
    return ContainerObject(
        id=c.id,
        name=c.name,
        created_at=c.created_at,
        status=c.status,
        last_active_at=c.last_active_at,
        expires_after=ExpiresAfter(minutes=c.expires_after_minutes),
        memory_limit=c.memory_limit,
        network_policy=NetworkPolicy(),
    )


def container_file_object(f: ContainerFileRecord) -> ContainerFileObject:
    return ContainerFileObject(
        id=f.id,
        container_id=f.container_id,
        created_at=f.created_at,
        bytes=f.bytes,
        path=f.path,
        source=f.source,
    )


# --- containers -----------------------------------------------------------------------------------
@router.post("/containers")
async def create_container(containers: ContainersDep, body: CreateContainer) -> ContainerObject:
    policy = body.network_policy
    if policy is not None and policy.type != "disabled":
        raise InvalidRequest(
            "agentbox containers have no network access, so network_policy 'allowlist' cannot be "
            "honoured; send {'type': 'disabled'} or leave it out.",
            param="network_policy.type",
        )
    if body.skills:
        raise InvalidRequest("agentbox containers do not run skills; leave 'skills' out.", param="skills")
    record = await containers.create(
        body.name,
        file_ids=body.file_ids,
        expires_after_minutes=body.expires_after.minutes if body.expires_after else None,
        memory_limit=body.memory_limit,
    )
    return container_object(record)


@router.get("/containers")
async def list_containers(
    containers: ContainersDep, page: ListDep, name: Annotated[str | None, Query()] = None
) -> wire.ListObject[ContainerObject]:
    found = await containers.list_containers(limit=page.limit, order=page.order, after=page.after, name=name)
    return wire.list_object(found, container_object)


@router.get("/containers/{container_id}")
async def retrieve_container(containers: ContainersDep, container_id: str) -> ContainerObject:
    return container_object(await containers.get(container_id))


@router.delete("/containers/{container_id}")
async def delete_container(containers: ContainersDep, container_id: str) -> wire.DeletedObject:
    await containers.delete(container_id)
    return wire.deleted_object(container_id, "container.deleted")


# --- container files ------------------------------------------------------------------------------
_ADD_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "file_id": {"type": "string"},
                    },
                    "description": "Either the raw file as part 'file', or 'file_id' of an uploaded file.",
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["file_id"],
                    "properties": {"file_id": {"type": "string"}},
                }
            },
        },
    }
}
_BY_ID = TypeAdapter(AddFileById)


@router.post("/containers/{container_id}/files", openapi_extra=_ADD_FILE_BODY, responses=UPLOAD_RESPONSES)
async def add_container_file(
    containers: ContainersDep, container_id: str, request: Request
) -> ContainerFileObject:
    """A multipart upload (part 'file'), or a copy of a /files file: multipart or JSON 'file_id'.
    The SDK sends file_id as multipart too; the content type decides how the body is read."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with upload_form(request, request.app.state.blobs.max_file_bytes) as form:
            upload, file_id = form.get("file"), form.get("file_id")
            if upload is not None and file_id is not None:
                raise InvalidRequest("Send either 'file' or 'file_id', not both.", param="file")
            if isinstance(upload, UploadFile):
                name = clean_filename(upload.filename)
                record = await containers.add_upload(container_id, name, upload.file)
            elif upload is not None:
                raise InvalidRequest("'file' must be a file part with a filename.", param="file")
            elif isinstance(file_id, str) and file_id:
                record = await containers.add_file_from(container_id, file_id)
            else:
                raise InvalidRequest("Missing required parameter: 'file' or 'file_id'.", param="file")
    else:
        try:
            body = _BY_ID.validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
        record = await containers.add_file_from(container_id, body.file_id)
    return container_file_object(record)


@router.get("/containers/{container_id}/files")
async def list_container_files(
    containers: ContainersDep, container_id: str, page: ListDep
) -> wire.ListObject[ContainerFileObject]:
    found = await containers.list_files(container_id, limit=page.limit, order=page.order, after=page.after)
    return wire.list_object(found, container_file_object)


@router.get("/containers/{container_id}/files/{file_id}")
async def retrieve_container_file(
    containers: ContainersDep, container_id: str, file_id: str
) -> ContainerFileObject:
    return container_file_object(await containers.get_file(container_id, file_id))


@router.delete("/containers/{container_id}/files/{file_id}")
async def delete_container_file(
    containers: ContainersDep, container_id: str, file_id: str
) -> wire.DeletedObject:
    await containers.delete_file(container_id, file_id)
    return wire.deleted_object(file_id, "container.file.deleted")


@router.get("/containers/{container_id}/files/{file_id}/content", response_class=FileResponse)
async def download_container_file(containers: ContainersDep, container_id: str, file_id: str) -> FileResponse:
    record = await containers.get_file(container_id, file_id)
    path = await containers.file_content(container_id, file_id)
    filename = data_name(record.path).rsplit("/", 1)[-1]
    media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return FileResponse(
        path, media_type=media_type, headers={"Content-Disposition": content_disposition(filename)}
    )
