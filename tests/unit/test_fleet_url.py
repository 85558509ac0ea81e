"""AGENTBOX_FLEET: what names a Ray head, the sentence for what does not, and what a moved session
tells the model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentbox.config import Settings
from agentbox.fleet.address import parse_fleet_url


def test_a_head_is_its_gcs_address() -> None:
    assert parse_fleet_url("ray://127.0.0.2:6379") == "127.0.0.2:6379"
    assert parse_fleet_url("ray://head.cluster.local:6379/") == "head.cluster.local:6379"
    assert Settings(fleet="ray://10.0.0.5:6379").fleet == "ray://10.0.0.5:6379"
    assert Settings(fleet="").fleet == ""  # the default: sessions on this machine


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.2:6379",
        "ray://127.0.0.2",
        "ray://:6379",
        "http://127.0.0.2:6379",
        "ray://h:6379/x",
        "ray://h:99999",
    ],
)
def test_anything_else_is_refused_with_the_form(url: str) -> None:
    with pytest.raises(ValueError, match=r"AGENTBOX_FLEET .*ray://HOST:PORT"):
        parse_fleet_url(url)
    with pytest.raises(ValidationError, match="ray://HOST:PORT"):
        Settings(fleet=url)
