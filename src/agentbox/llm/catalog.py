"""The models file: which provider serves which model name, and with which options.

A TOML file (path in AGENTBOX_MODELS_FILE) names providers and maps model names or globs to them;
AGENTBOX_MODEL_BASE_URL stays the one-provider shortcut, serving every name the file does not match.
Everything is checked when the server starts, so a typo fails the start, not the first run.
"""

from __future__ import annotations

import fnmatch
import os
import time
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from agentbox.errors import ModelError

NOT_CONFIGURED = (
    "No model endpoint is configured. Set AGENTBOX_MODEL_BASE_URL (an OpenAI-compatible "
    "chat-completions URL such as https://api.openai.com/v1 or http://localhost:11434/v1) and "
    "AGENTBOX_MODEL_API_KEY, or list providers in a models file (AGENTBOX_MODELS_FILE), then restart "
    "agentbox."
)
SHORTCUT = "default"
"""The provider name of AGENTBOX_MODEL_BASE_URL (it shows as owned_by in GET /v1/models)."""


class ModelsFileError(ValueError):
    """The models file cannot be used; the message names the file and the key at fault."""


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Options of a model; on a provider they are the defaults of the models it serves."""

    vision: bool = False
    context_window: int | None = None
    temperature: bool = True
    """False: the model refuses temperature/top_p (OpenAI's reasoning models); they are not sent."""
    reasoning: bool = False
    """True: the completion limit goes as max_completion_tokens, reasoning_effort is sent."""
    reasoning_effort: str | None = None
    native_tools: bool = True
    """False: the model gets no tools; it writes ```python blocks, which run as code calls."""
    upstream: str | None = None
    timeout_s: float | None = None
    max_retries: int = 3


_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "vision": (bool,),
    "context_window": (int,),
    "temperature": (bool,),
    "reasoning": (bool,),
    "reasoning_effort": (str,),
    "native_tools": (bool,),
    "upstream": (str,),
    "timeout_s": (int, float),
    "max_retries": (int,),
}
_EFFORTS = ("minimal", "low", "medium", "high")
_PROVIDER_KEYS = {"kind", "base_url", "api_key", "api_key_env", "api_version", "auth"}


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    base_url: str
    """Without a trailing slash: …/v1 for OpenAI-compatible, the resource URL or …/openai/v1 for Azure."""
    kind: Literal["openai", "azure"] = "openai"
    api_key: str = ""
    api_version: str | None = None
    auth: Literal["key", "entra"] = "key"

    @property
    def azure_deployments(self) -> bool:
        """Azure's classic URLs, /openai/deployments/{model}/chat/completions?api-version=…"""
        return self.kind == "azure" and not self.base_url.endswith("/openai/v1")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """How one requested model name is served."""

    name: str
    provider: Provider
    options: ModelOptions = field(default_factory=ModelOptions)

    @property
    def upstream(self) -> str:
        """The name the provider knows the model by (for Azure's classic URLs: the deployment)."""
        return self.options.upstream or self.name


@dataclass(frozen=True, slots=True)
class _Entry:
    match: str
    provider: Provider
    options: ModelOptions

    def matches(self, name: str) -> bool:
        return name == self.match or fnmatch.fnmatchcase(name, self.match)


class Catalog:
    def __init__(self, entries: list[_Entry], shortcut: ModelConfig | None) -> None:
        self._entries = entries
        self._shortcut = shortcut
        self.loaded_at = int(time.time())
        """GET /v1/models' `created`: when agentbox read the file (providers do not say)."""

    @property
    def providers(self) -> list[Provider]:
        seen = {entry.provider.name: entry.provider for entry in self._entries}
        if self._shortcut is not None:
            seen.setdefault(self._shortcut.provider.name, self._shortcut.provider)
        return list(seen.values())

    def resolve(self, name: str) -> ModelConfig:
        """The first [[models]] entry matching `name`, else the shortcut; ModelError when none serves it."""
        for entry in self._entries:
            if entry.matches(name):
                return ModelConfig(name, entry.provider, entry.options)
        if self._shortcut is not None:
            return replace(self._shortcut, name=name)
        if not self._entries:
            raise ModelError(NOT_CONFIGURED, code="server_error")
        raise ModelError(
            f"No provider serves the model '{name}': the models file matches "
            f"{', '.join(repr(e.match) for e in self._entries)} and AGENTBOX_MODEL_BASE_URL is not set.",
            code="server_error",
        )

    def listed(self) -> list[tuple[str, str]]:
        """(name or glob, provider name) of every [[models]] entry, in file order."""
        return [(entry.match, entry.provider.name) for entry in self._entries]


def shortcut_config(
    base_url: str,
    api_key: str,
    *,
    timeout_s: float,
    vision: bool,
    context_window: int | None,
    native_tools: bool,
) -> ModelConfig | None:
    """AGENTBOX_MODEL_BASE_URL's provider, serving any name; None when it is not set."""
    if not base_url:
        return None
    options = ModelOptions(
        vision=vision, context_window=context_window, native_tools=native_tools, timeout_s=timeout_s
    )
    return ModelConfig("*", Provider(SHORTCUT, base_url.rstrip("/"), api_key=api_key), options)


def load_catalog(
    path: Path | None, shortcut: ModelConfig | None, environ: dict[str, str] | None = None
) -> Catalog:
    """Read and check the models file (if any); raises ModelsFileError naming the key at fault."""
    if path is None:
        return Catalog([], shortcut)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ModelsFileError(f"{path}: cannot read the models file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelsFileError(f"{path}: not valid TOML: {exc}") from exc
    return Catalog(_parse(path, data, os.environ if environ is None else environ), shortcut)


def _parse(path: Path, data: dict[str, Any], environ: Any) -> list[_Entry]:
    def fail(where: str, message: str) -> ModelsFileError:
        return ModelsFileError(f"{path}: {where}: {message}")

    unknown = set(data) - {"providers", "models"}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown key (the file has [providers.NAME] and [[models]])")
    providers: dict[str, tuple[Provider, dict[str, Any]]] = {}
    for name, table in _table(data.get("providers", {}), "providers", fail).items():
        where = f"providers.{name}"
        table = _table(table, where, fail)
        options = {k: v for k, v in table.items() if k not in _PROVIDER_KEYS}
        providers[name] = (_provider(name, table, where, environ, fail), _options(options, where, fail))
    entries = []
    models = data.get("models", [])
    if not isinstance(models, list):
        raise fail("models", "must be an array of tables ([[models]])")
    for number, table in enumerate(models, 1):
        where = f"models #{number}"
        table = dict(_table(table, where, fail))
        match, provider_name = table.pop("match", None), table.pop("provider", None)
        if not isinstance(match, str) or not match:
            raise fail(f"{where}.match", "a model name or glob is required")
        if provider_name not in providers:
            known = ", ".join(providers) or "none"
            raise fail(f"{where}.provider", f"{provider_name!r} is not a [providers.NAME] (known: {known})")
        provider, defaults = providers[provider_name]
        merged = ModelOptions(**{**defaults, **_options(table, f"{where} ({match})", fail)})
        entries.append(_Entry(match, provider, merged))
    return entries


def _table(value: Any, where: str, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, "must be a table")
    return value


def _provider(name: str, table: dict[str, Any], where: str, environ: Any, fail: Any) -> Provider:
    for key in ("kind", "base_url", "api_key", "api_key_env", "api_version", "auth"):
        if key in table and not isinstance(table[key], str):
            raise fail(f"{where}.{key}", "must be a string")
    kind = table.get("kind", "openai")
    if kind not in ("openai", "azure"):
        raise fail(f"{where}.kind", f"{kind!r} is not 'openai' or 'azure'")
    base_url = str(table.get("base_url", "")).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise fail(f"{where}.base_url", "an http:// or https:// URL is required")
    auth = table.get("auth", "key")
    if auth not in ("key", "entra"):
        raise fail(f"{where}.auth", f"{auth!r} is not 'key' or 'entra'")
    if auth == "entra" and kind != "azure":
        raise fail(f"{where}.auth", "'entra' needs kind = \"azure\"")
    if "api_key" in table and "api_key_env" in table:
        raise fail(f"{where}.api_key", "give api_key or api_key_env, not both")
    api_key = table.get("api_key", "")
    if env := table.get("api_key_env"):
        api_key = environ.get(env, "")
        if not api_key:
            raise fail(f"{where}.api_key_env", f"the environment variable {env} is not set")
    provider = Provider(name, base_url, kind, api_key, table.get("api_version"), auth)
    if provider.azure_deployments and not provider.api_version:
        raise fail(
            f"{where}.api_version",
            'Azure\'s deployment URLs need an api_version (e.g. "2024-10-21"); '
            "or end base_url with /openai/v1",
        )
    if kind == "azure" and auth == "key" and not api_key:
        raise fail(where, 'Azure needs api_key, api_key_env or auth = "entra"')
    return provider


def _options(table: dict[str, Any], where: str, fail: Any) -> dict[str, Any]:
    known = {f.name for f in fields(ModelOptions)}
    for key, value in table.items():
        if key not in known:
            raise fail(f"{where}.{key}", f"unknown key (model options: {', '.join(sorted(known))})")
        types = _OPTION_TYPES[key]
        # bool is an int in Python; a flag is not a number here.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise fail(f"{where}.{key}", f"must be {' or '.join(t.__name__ for t in types)}")
    if table.get("reasoning_effort") not in (None, *_EFFORTS):
        raise fail(f"{where}.reasoning_effort", f"must be one of {', '.join(_EFFORTS)}")
    for key in ("context_window", "timeout_s"):
        if key in table and table[key] <= 0:
            raise fail(f"{where}.{key}", "must be above 0")
    if table.get("max_retries", 0) < 0:
        raise fail(f"{where}.max_retries", "must be 0 or more")
    return dict(table)
