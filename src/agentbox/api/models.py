"""/models: the model names the models file configures, in OpenAI's list shape.

Only names the file lists are shown, globs as written ("gpt-4o*"): agentbox cannot know which names
a provider or the AGENTBOX_MODEL_BASE_URL shortcut would accept. Retrieving a name resolves it as a
run would, so a name a glob or the shortcut serves is found too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from agentbox.api.errors import ERROR_RESPONSES
from agentbox.errors import ModelError, NotFound
from agentbox.llm.router import ModelRouter

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)


def get_models(request: Request) -> ModelRouter:
    models: ModelRouter = request.app.state.models
    return models


ModelsDep = Annotated[ModelRouter, Depends(get_models)]


def _model(name: str, provider: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": provider}


@router.get("/models")
async def list_models(models: ModelsDep) -> dict[str, Any]:
    created = models.catalog.loaded_at
    return {
        "object": "list",
        "data": [_model(name, provider, created) for name, provider in models.catalog.listed()],
    }


@router.get("/models/{model:path}")
async def retrieve_model(model: str, models: ModelsDep) -> dict[str, Any]:
    try:
        config = models.resolve(model)
    except ModelError as exc:
        raise NotFound(f"The model '{model}' does not exist.", param="model", code="model_not_found") from exc
    return _model(model, config.provider.name, models.catalog.loaded_at)
