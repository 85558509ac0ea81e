"""Drives agentbox's Foundry agent routes with azure-ai-projects 2.x (run in .clients/foundry).

argv: project_endpoint csv_path. DefaultAzureCredential must find IDENTITY_ENDPOINT/IDENTITY_HEADER
(the live server's token route) and the CA bundle variables in the environment. Prints JSON.
"""

from __future__ import annotations

import json
import sys

from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import (
    AutoCodeInterpreterToolParam,
    CodeInterpreterTool,
    FunctionTool,
    PromptAgentDefinition,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential


def main(endpoint: str, csv_path: str) -> None:
    seen: dict[str, object] = {}
    with (
        DefaultAzureCredential() as credential,
        AIProjectClient(endpoint=endpoint, credential=credential) as project,
        project.get_openai_client() as openai_client,
    ):
        with open(csv_path, "rb") as handle:
            upload = openai_client.files.create(purpose="assistants", file=handle)
        code = CodeInterpreterTool(
            container=AutoCodeInterpreterToolParam(file_ids=[upload.id], memory_limit="1g")
        )
        first = project.agents.create_version(
            agent_name="charts",
            definition=PromptAgentDefinition(
                model="gpt-4o-mini", instructions="First instructions.", tools=[code], temperature=0.2
            ),
            description="Charts from CSV files.",
            metadata={"team": "data"},
        )
        seen["first"] = first.as_dict()
        weather = FunctionTool(
            name="get_weather",
            description="Weather in a city.",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}},
            strict=False,
        )
        second = project.agents.create_version(
            agent_name="charts",
            definition=PromptAgentDefinition(
                model="gpt-4o-mini", instructions="Second instructions.", tools=[code, weather]
            ),
        )
        seen["second"] = {
            "id": second.id,
            "version": second.version,
            "tools": [t.as_dict() for t in second.definition.tools],
        }
        project.agents.create_version(
            agent_name="other", definition=PromptAgentDefinition(model="gpt-4o-mini")
        )

        got = project.agents.get(agent_name="charts")
        seen["agent"] = {
            "object": got.object,
            "id": got.id,
            "name": got.name,
            "latest": got.versions.latest.version,
            "latest_instructions": got.versions.latest.definition.instructions,
        }
        seen["listed"] = [a.name for a in project.agents.list(limit=1, order="asc")]
        seen["listed_prompt"] = [a.name for a in project.agents.list(kind="prompt")]
        seen["listed_hosted"] = [a.name for a in project.agents.list(kind="hosted")]
        seen["versions"] = [v.version for v in project.agents.list_versions(agent_name="charts", limit=1)]
        one = project.agents.get_version(agent_name="charts", agent_version="1")
        seen["version_one"] = {
            "instructions": one.definition.instructions,
            "file_ids": one.definition.tools[0].container.file_ids,
            "temperature": one.definition.temperature,
        }

        deleted_version = project.agents.delete_version(agent_name="charts", agent_version="1")
        seen["deleted_version"] = deleted_version.as_dict()
        try:
            project.agents.get_version(agent_name="charts", agent_version="1")
            seen["gone_version"] = "still there"
        except ResourceNotFoundError as exc:
            seen["gone_version"] = exc.status_code
        seen["after_delete_latest"] = project.agents.get(agent_name="charts").versions.latest.version
        third = project.agents.create_version(
            agent_name="charts", definition=PromptAgentDefinition(model="gpt-4o-mini")
        )
        seen["third"] = third.version

        try:
            project.agents.create_version(
                agent_name="bad name!", definition=PromptAgentDefinition(model="gpt-4o-mini")
            )
            seen["bad_name"] = "accepted"
        except HttpResponseError as exc:
            seen["bad_name"] = [exc.status_code, exc.error.code if exc.error else None, str(exc.message)]

        deleted = project.agents.delete(agent_name="charts")
        seen["deleted"] = deleted.as_dict()
        try:
            project.agents.get(agent_name="charts")
            seen["gone"] = "still there"
        except ResourceNotFoundError as exc:
            seen["gone"] = exc.status_code
        project.agents.delete(agent_name="other")
        seen["left"] = [a.name for a in project.agents.list()]
        openai_client.files.delete(upload.id)
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
