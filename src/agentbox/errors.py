"""The error hierarchy every layer raises; api/errors.py alone maps it to HTTP.

AgentboxError
├── NotFound            an id names nothing (404)
├── InvalidRequest      the client sent something we cannot accept (400)
│   └── PayloadTooLarge      an uploaded file past the size cap (413)
├── Unauthorized        no or wrong credentials (401)
├── Conflict            the request clashes with current state, e.g. an active run (400/409)
├── StorageFull         the data dir's disk is full: nothing was stored (507)
├── StoreUnavailable    the object store (AGENTBOX_BLOB_URL) failed a read or write (503)
├── SandboxError        the sandbox could not do what was asked
│   ├── SandboxUnavailable   no sandbox of the configured strength can be started
│   └── ProtocolError        the executor sent something that breaks the frame protocol
└── ModelError          the model endpoint failed or is not configured
    └── ContextTooLong   the provider refused the prompt as longer than the model's context window
"""

from __future__ import annotations


class AgentboxError(Exception):
    """Base of every error agentbox raises on purpose."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class NotFound(AgentboxError):
    pass


class InvalidRequest(AgentboxError):
    pass


class PayloadTooLarge(InvalidRequest):
    pass


class Unauthorized(AgentboxError):
    pass


class Conflict(AgentboxError):
    pass


class StorageFull(AgentboxError):
    """Not the client's mistake, but not a crash either: the message says what to free."""


class StoreUnavailable(AgentboxError):
    """The object store that holds the files could not be reached or refused; nothing was stored."""


class SandboxError(AgentboxError):
    pass


class SandboxUnavailable(SandboxError):
    pass


class ProtocolError(SandboxError):
    pass


class ModelError(AgentboxError):
    pass


class ContextTooLong(ModelError):
    """The provider said the prompt does not fit; the engine truncates the conversation and retries once."""
