"""Golden tests: every JSON example in both seeds parses into its model and serialises back."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from lightd_shared.commands import COMMAND, CommandResult
from lightd_shared.monitoring import HealthReport, Metrics
from lightd_shared.nodes import NodeList, NodeRegistration, NodeStatusView, NodeUpdate
from lightd_shared.remote import (
    ConfigDocument,
    ErrorUpdate,
    MessageResponse,
    RemoteConfigView,
    RemoteHealth,
    RemoteSettings,
    RemoteUpdate,
    StatusUpdate,
    UpdateAck,
)
from lightd_shared.services import ServiceListing
from tests.shared.seed_examples import COORDINATION, REMOTE_SYNC, json_examples

_UPDATE = TypeAdapter(RemoteUpdate)


class _ConfigJson(BaseModel):
    """The seed's config.json example holds only the ``remote`` block."""

    remote: RemoteSettings


# One entry per JSON example, in the order the seed shows them.
REMOTE_SYNC_MODELS: list[type[BaseModel] | TypeAdapter[Any]] = [
    _ConfigJson,  # config.json {"remote": {...}}
    RemoteHealth,  # GET /health answer
    _UPDATE,  # status update body
    _UPDATE,  # error update body
    UpdateAck,  # {"success": true}
    ConfigDocument,  # GET /config answer
    ConfigDocument,  # POST /config body
    _UPDATE,  # event flow: installing
    _UPDATE,  # event flow: ready
    _UPDATE,  # container error
    _UPDATE,  # reinstall: installing
    _UPDATE,  # reinstall: ready
    RemoteHealth,  # health check loop answer
    RemoteConfigView,  # GET /remote/config
    MessageResponse,  # POST /remote/config/reload
]

COORDINATION_MODELS: list[type[BaseModel] | TypeAdapter[Any]] = [
    NodeRegistration,  # POST /api/v1/nodes
    NodeList,  # GET /api/v1/nodes
    NodeStatusView,  # GET /api/v1/nodes/{id}/status
    NodeUpdate,  # PUT /api/v1/nodes/{id}
    COMMAND,  # POST /api/v1/nodes/{id}/commands
    CommandResult,  # its answer
    CommandResult,  # POST /api/v1/commands/{id}/result
    ServiceListing,  # GET /api/v1/services
    HealthReport,  # GET /health
    Metrics,  # GET /metrics
    NodeRegistration,  # curl: registering a Docker node
    COMMAND,  # curl: sending a command
]


def _roundtrip(model: type[BaseModel] | TypeAdapter[Any], document: Any) -> Any:
    if isinstance(model, TypeAdapter):
        value = model.validate_python(document)
        return model.dump_python(value, mode="json", exclude_unset=True)
    return model.model_validate(document).model_dump(mode="json", exclude_unset=True)


def test_every_remote_sync_example_is_covered() -> None:
    assert len(json_examples(REMOTE_SYNC)) == len(REMOTE_SYNC_MODELS)


def test_every_coordination_example_is_covered() -> None:
    assert len(json_examples(COORDINATION)) == len(COORDINATION_MODELS)


@pytest.mark.parametrize(
    ("index", "model"), list(enumerate(REMOTE_SYNC_MODELS)), ids=lambda v: str(v)[:30]
)
def test_remote_sync_example_roundtrips(index: int, model: Any) -> None:
    document = json_examples(REMOTE_SYNC)[index]
    assert _roundtrip(model, document) == document


def _with_command(document: dict[str, Any]) -> dict[str, Any]:
    # The seed elides the echoed command as {...}; put the seed's own command there.
    if document.get("command") == {}:
        document = {**document, "command": json_examples(COORDINATION)[4]}
    return document


@pytest.mark.parametrize(
    ("index", "model"), list(enumerate(COORDINATION_MODELS)), ids=lambda v: str(v)[:30]
)
def test_coordination_example_roundtrips(index: int, model: Any) -> None:
    document = _with_command(json_examples(COORDINATION)[index])
    assert _roundtrip(model, document) == document


def test_update_bodies_pick_the_right_shape() -> None:
    status, error = json_examples(REMOTE_SYNC)[2:4]
    assert isinstance(_UPDATE.validate_python(status), StatusUpdate)
    parsed = _UPDATE.validate_python(error)
    assert isinstance(parsed, ErrorUpdate)
    assert parsed.data == "Docker container creation failed: image not found"
