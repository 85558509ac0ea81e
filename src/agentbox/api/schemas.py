"""Request bodies as the SDKs send them (spec §1.2); unknown fields are ignored, like OpenAI does."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Metadata = dict[str, str]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]


def _check_metadata(value: Metadata | None) -> Metadata | None:
    if value is None:
        return value
    if len(value) > 16:
        raise ValueError("metadata may have at most 16 key-value pairs")
    for key, item in value.items():
        if len(key) > 64 or len(item) > 512:
            raise ValueError("metadata keys are at most 64 characters and values at most 512")
    return value


def no_azure_data_sources(value: Any) -> Any:
    """Azure's data_sources and store configuration name Azure AI Search or Azure ML assets, which
    this server cannot reach: refused, never dropped (a store would be empty yet `completed`)."""
    if value:
        raise ValueError(
            "Azure data sources (Azure ML data assets, Azure AI Search) are not supported by this "
            "server; upload the files to /files and give their ids instead"
        )
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionDefinition(_Body):
    model_config = ConfigDict(extra="allow")  # strict, and whatever newer SDKs add, reach the model
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class CodeInterpreterTool(_Body):
    model_config = ConfigDict(extra="allow")
    type: Literal["code_interpreter"]


class RankingOptions(_Body):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: float = Field(0.0, ge=0, le=1)


class FileSearchOptions(_Body):
    max_num_results: int | None = Field(None, ge=1, le=50)
    ranking_options: RankingOptions | None = None


class FileSearchTool(_Body):
    model_config = ConfigDict(extra="allow")
    type: Literal["file_search"]
    file_search: FileSearchOptions | None = None


class FunctionTool(_Body):
    type: Literal["function"]
    function: FunctionDefinition


Tool = Annotated[CodeInterpreterTool | FileSearchTool | FunctionTool, Field(discriminator="type")]


class CodeInterpreterResources(_Body):
    file_ids: list[str] = Field(default_factory=list, max_length=20)
    vector_store_ids: list[str] | None = None
    """Stores whose completed files are placed in /mnt/data too (the classic Azure agents' and
    OpenAI .NET's CodeInterpreterToolResources.VectorStoreIds)."""
    data_sources: Any = None

    _data_sources = field_validator("data_sources")(no_azure_data_sources)


class NewVectorStore(_Body):
    """tool_resources.file_search.vector_stores: a store made with these files and attached."""

    file_ids: list[str] = Field(default_factory=list, max_length=10_000)
    chunking_strategy: dict[str, Any] | None = None
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class FileSearchResources(_Body):
    vector_store_ids: list[str] | None = Field(None, max_length=1)
    vector_stores: list[NewVectorStore] | None = Field(None, max_length=1)


class ToolResources(_Body):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


class AttachmentTool(_Body):
    type: str


class Attachment(_Body):
    file_id: str
    tools: list[AttachmentTool] = Field(default_factory=list)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ImageFileRef(_Body):
    file_id: str
    detail: str | None = None


class ImageFilePart(_Body):
    type: Literal["image_file"]
    image_file: ImageFileRef


class ImageUrlRef(_Body):
    url: str
    detail: str | None = None


class ImageUrlPart(_Body):
    type: Literal["image_url"]
    image_url: ImageUrlRef


ContentPart = Annotated[TextPart | ImageFilePart | ImageUrlPart, Field(discriminator="type")]


class CreateMessage(_Body):
    role: Literal["user", "assistant"]
    content: str | list[ContentPart]
    attachments: list[Attachment] | None = None
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class UpdateMetadata(_Body):
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class CreateAssistant(_Body):
    model: str = Field(min_length=1)
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)
    instructions: str | None = Field(None, max_length=256_000)
    tools: list[Tool] = Field(default_factory=list, max_length=128)
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    response_format: Any = None

    _metadata = field_validator("metadata")(_check_metadata)


class UpdateAssistant(_Body):
    model: str | None = None
    name: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=512)
    instructions: str | None = Field(None, max_length=256_000)
    tools: list[Tool] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    response_format: Any = None

    _metadata = field_validator("metadata")(_check_metadata)


class CreateThread(_Body):
    messages: list[CreateMessage] = Field(default_factory=list)
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class UpdateThread(_Body):
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class TruncationStrategy(_Body):
    type: Literal["auto", "last_messages"]
    last_messages: int | None = Field(None, ge=1)


class CreateRun(_Body):
    assistant_id: str
    model: str | None = None
    instructions: str | None = None
    additional_instructions: str | None = None
    additional_messages: list[CreateMessage] | None = None
    tools: list[Tool] | None = None
    metadata: Metadata | None = None
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_prompt_tokens: int | None = Field(None, ge=256)
    max_completion_tokens: int | None = Field(None, ge=16)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    response_format: Any = None
    reasoning_effort: ReasoningEffort | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class CreateThreadAndRun(CreateRun):
    thread: CreateThread | None = None
    tool_resources: ToolResources | None = None


class ToolOutput(_Body):
    tool_call_id: str
    output: str = ""


class SubmitToolOutputs(_Body):
    tool_outputs: list[ToolOutput] = Field(min_length=1)
    stream: bool | None = None
