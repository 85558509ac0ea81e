"""AGENTBOX_FLEET's form; kept free of Ray, so reading the settings does not import it."""

from __future__ import annotations

from urllib.parse import urlsplit

FORMAT = "ray://HOST:PORT"
NODE_RESOURCE = "agentbox_node"
"""The Ray resource a sandbox node offers: the fleet sends sessions only to nodes that have it."""


def parse_fleet_url(url: str) -> str:
    """HOST:PORT of ray://HOST:PORT (the Ray head's GCS address); ValueError with a sentence otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"AGENTBOX_FLEET is not a URL ({exc}); the form is {FORMAT}") from exc
    if parts.scheme != "ray" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"AGENTBOX_FLEET must be {FORMAT}, the Ray head's GCS address; got {url!r}")
    return f"{parts.hostname}:{port}"
