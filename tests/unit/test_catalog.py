"""The models file: which provider and options a model name gets, and the start refused on a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentbox.errors import ModelError
from agentbox.llm.base import ChatRequest
from agentbox.llm.catalog import (
    NOT_CONFIGURED,
    Catalog,
    ModelsFileError,
    load_catalog,
    shortcut_config,
)
from agentbox.llm.openai_compatible import request_body

EXAMPLE = """
[providers.openai]
base_url = "https://api.openai.com/v1/"
api_key_env = "TEST_OPENAI_KEY"

[providers.local]
base_url = "http://127.0.0.1:8080/v1"
native_tools = false

[providers.azure]
kind = "azure"
base_url = "https://res.openai.azure.com"
api_version = "2024-10-21"
api_key = "azure-key"

[[models]]
match = "gpt-4o*"
provider = "openai"
vision = true
context_window = 128000

[[models]]
match = "o3*"
provider = "openai"
reasoning = true
temperature = false
reasoning_effort = "medium"

[[models]]
match = "coder"
provider = "local"
upstream = "qwen2.5-coder:7b"
context_window = 32768

[[models]]
match = "gpt-4o-deploy"
provider = "azure"
"""


def catalog(tmp_path: Path, text: str, shortcut: bool = False, **environ: str) -> Catalog:
    path = tmp_path / "models.toml"
    path.write_text(text)
    default = (
        shortcut_config(
            "http://127.0.0.1:9/v1", "k", timeout_s=30, vision=False, context_window=None, native_tools=True
        )
        if shortcut
        else None
    )
    return load_catalog(path, default, environ)


def test_first_match_wins_and_options_merge_over_provider_defaults(tmp_path: Path) -> None:
    models = catalog(tmp_path, EXAMPLE, TEST_OPENAI_KEY="sk-from-env")
    mini = models.resolve("gpt-4o-mini")
    assert mini.provider.name == "openai" and mini.provider.base_url == "https://api.openai.com/v1"
    assert mini.provider.api_key == "sk-from-env"  # read from the variable the file names
    assert (mini.options.vision, mini.options.context_window, mini.upstream) == (True, 128000, "gpt-4o-mini")
    # "gpt-4o-deploy" also matches the earlier glob "gpt-4o*": file order decides.
    assert models.resolve("gpt-4o-deploy").provider.name == "openai"
    coder = models.resolve("coder")
    assert coder.upstream == "qwen2.5-coder:7b" and coder.options.native_tools is False
    o3 = models.resolve("o3-mini")
    assert (o3.options.reasoning, o3.options.temperature, o3.options.reasoning_effort) == (
        True,
        False,
        "medium",
    )
    assert models.listed() == [
        ("gpt-4o*", "openai"),
        ("o3*", "openai"),
        ("coder", "local"),
        ("gpt-4o-deploy", "azure"),
    ]


def test_unmatched_names_go_to_the_shortcut_or_fail_naming_the_patterns(tmp_path: Path) -> None:
    with_shortcut = catalog(tmp_path, EXAMPLE, shortcut=True, TEST_OPENAI_KEY="k")
    assert with_shortcut.resolve("llama3").provider.name == "default"
    assert with_shortcut.resolve("llama3").name == "llama3"
    without = catalog(tmp_path, EXAMPLE, TEST_OPENAI_KEY="k")
    with pytest.raises(ModelError, match=r"No provider serves the model 'llama3'.*'gpt-4o\*'"):
        without.resolve("llama3")
    with pytest.raises(ModelError) as raised:
        load_catalog(None, None).resolve("gpt-4o")
    assert raised.value.message == NOT_CONFIGURED


def test_azure_url_forms(tmp_path: Path) -> None:
    models = catalog(tmp_path, EXAMPLE, TEST_OPENAI_KEY="k")
    assert models.resolve("gpt-4o-deploy").provider.azure_deployments is False  # "gpt-4o*" won
    text = EXAMPLE.replace('match = "gpt-4o*"', 'match = "gpt-4o-mini"')
    classic = catalog(tmp_path, text, TEST_OPENAI_KEY="k").resolve("gpt-4o-deploy").provider
    assert classic.azure_deployments and classic.api_version == "2024-10-21"
    v1 = text.replace('base_url = "https://res.openai.azure.com"', 'base_url = "https://res/openai/v1"')
    v1 = v1.replace('api_version = "2024-10-21"\n', "")
    assert not catalog(tmp_path, v1, TEST_OPENAI_KEY="k").resolve("gpt-4o-deploy").provider.azure_deployments


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        (
            '[providers.p]\nbase_url = "http://h/v1"\ncontext_windw = 5\n',
            "providers.p.context_windw: unknown key",
        ),
        (
            '[providers.p]\nbase_url = "http://h/v1"\n[[models]]\nmatch = "m"\nprovider = "q"\n',
            "models #1.provider: 'q' is not a [providers.NAME] (known: p)",
        ),
        (
            '[providers.p]\nbase_url = "http://h/v1"\n'
            '[[models]]\nmatch = "m"\nprovider = "p"\nvisoin = true\n',
            "models #1 (m).visoin: unknown key",
        ),
        ('[providers.p]\nbase_url = "http://h/v1"\nvision = "yes"\n', "providers.p.vision: must be bool"),
        ('[providers.p]\nbase_url = "http://h/v1"\ncontext_window = true\n', "context_window: must be int"),
        ('[providers.p]\nbase_url = "h"\n', "providers.p.base_url: an http:// or https:// URL is required"),
        (
            '[providers.p]\nbase_url = "http://h/v1"\napi_key_env = "NOT_SET_HERE"\n',
            "NOT_SET_HERE is not set",
        ),
        (
            '[providers.p]\nkind = "azure"\nbase_url = "https://r.openai.azure.com"\napi_key = "k"\n',
            "providers.p.api_version: Azure's deployment URLs need an api_version",
        ),
        ('[providers.p]\nbase_url = "http://h/v1"\nauth = "entra"\n', "'entra' needs kind = \"azure\""),
        ('[providers.p]\nbase_url = "http://h/v1"\nreasoning_effort = "max"\n', "must be one of minimal"),
        ('[provider.p]\nbase_url = "http://h/v1"\n', "provider: unknown key"),
        ("[providers.p\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(tmp_path: Path, text: str, fault: str) -> None:
    with pytest.raises(ModelsFileError) as raised:
        catalog(tmp_path, text)
    assert fault in str(raised.value) and str(tmp_path / "models.toml") in str(raised.value)


def request(**fields: object) -> ChatRequest:
    return ChatRequest(model="asked", messages=[{"role": "user", "content": "hi"}], **fields)  # type: ignore[arg-type]


def test_request_shaping_follows_the_model_config(tmp_path: Path) -> None:
    models = catalog(tmp_path, EXAMPLE, TEST_OPENAI_KEY="k")
    sampled = request(temperature=0.2, top_p=0.9, max_tokens=50, reasoning_effort="high")
    o3 = request_body(sampled, models.resolve("o3-mini"))
    assert o3["model"] == "o3-mini" and o3["max_completion_tokens"] == 50 and o3["reasoning_effort"] == "high"
    assert not {"max_tokens", "temperature", "top_p"} & o3.keys()
    # No effort asked: the configured default goes.
    assert request_body(request(), models.resolve("o3"))["reasoning_effort"] == "medium"
    plain = request_body(sampled, models.resolve("coder"))
    assert plain["model"] == "qwen2.5-coder:7b"  # the upstream name, not the one asked for
    assert (plain["max_tokens"], plain["temperature"], plain["top_p"]) == (50, 0.2, 0.9)
    assert not {"max_completion_tokens", "reasoning_effort"} & plain.keys()
    # Tools and their options go only with tools; response_format always when set.
    shaped = request_body(
        request(tool_choice="auto", parallel_tool_calls=False, response_format={"type": "json_object"}),
        models.resolve("coder"),
    )
    assert not {"tool_choice", "parallel_tool_calls", "tools"} & shaped.keys()
    assert shaped["response_format"] == {"type": "json_object"}
