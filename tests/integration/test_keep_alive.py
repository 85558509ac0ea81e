"""An idle connection outlives the clients' own idle expiry, so a client coming back just inside its
expiry never sends on a connection the server is closing (the reset a burst of 300 clients saw)."""

from __future__ import annotations

import time

import httpx

from tests.conftest import API_KEY
from tests.live_server import LiveServer

HTTPX_IDLE_EXPIRY_S = 5.0  # httpx's and so the openai SDK's; uvicorn's own default was the same


def local_address(response: httpx.Response) -> tuple[str, int]:
    address: tuple[str, int] = response.extensions["network_stream"].get_extra_info("client_addr")
    return address


def test_an_idle_connection_is_kept_longer_than_clients_keep_theirs(live_server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(keepalive_expiry=None)  # the client keeps it: only the server may close it
    with httpx.Client(base_url=live_server.base_url, headers=headers, limits=limits) as http:
        first = http.get("/models")
        assert first.status_code == 200
        used = local_address(first)
        time.sleep(HTTPX_IDLE_EXPIRY_S + 1)
        again = http.get("/models")
        assert again.status_code == 200
        assert local_address(again) == used  # the same connection, still open
