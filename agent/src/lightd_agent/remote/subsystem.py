"""Remote sync as one of the agent's subsystems: started with the app, stopped with it.

:func:`remote_subsystem` is a factory ``(agent) -> async context manager``, a
:data:`~lightd_agent.core.Subsystem`. It is entered *before* the server
manager starts, so the updates that recovery publishes are already recorded in the outbox, and
exited after the manager stopped. It:

- opens the outbox in ``storage.state_dir`` and attaches to ``agent.bus`` (durable listener
  and gate);
- puts the :class:`RemoteSync` on ``agent.remote_sync`` for the ``/remote`` routes;
- adds the ``remote`` section to ``GET /health``;
- gives a remote under ``coordinator.url`` this node's proof (:mod:`.proof`), no other;
- makes ``POST /remote/config/reload`` re-read ``agent.config_path`` with the agent's own
  :func:`~lightd_agent.config.load_config` (file and ``LIGHTD_*`` overrides alike).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lightd_agent.config import AgentConfig, load_config
from lightd_agent.errors import AgentError
from lightd_agent.events import EventBus
from lightd_agent.remote.proof import CoordinatorProof, coordinator_proof
from lightd_agent.remote.sync import RemoteSync
from lightd_shared.containers import ContainerSpec
from lightd_shared.remote import AppliedContainer, ConfigDocument, RemoteSettings
from lightd_shared.tokens import mask_token

if TYPE_CHECKING:
    from lightd_agent.core import Agent

__all__ = ["extra_outbox_file", "remote_subsystem", "remotes_subsystem"]


def _reloader(agent: Agent) -> RemoteSettings:
    path = agent.config_path
    if path is None:
        raise RuntimeError(
            "this agent was built without a config file, so there is nothing to reload from"
        )
    fresh = load_config(path).remote
    config: AgentConfig = agent.config
    config.remote = fresh
    return fresh


def _proof(agent: Agent) -> CoordinatorProof | None:
    """This node's proof for a remote under ``coordinator.url`` (``None``: no coordinator)."""
    return coordinator_proof(agent.config, agent.dispatch_key)


def _document(agent: Agent) -> ConfigDocument:
    """The agent's own configuration for ``POST {url}/config``: its servers and settings."""
    config: AgentConfig = agent.config
    manager = agent.manager
    containers = [
        server.spec.model_dump(mode="json", exclude_unset=True)
        for server in sorted(manager.servers.values(), key=lambda s: s.id)
    ]
    remote = config.remote.model_dump(mode="json")
    remote["token"] = mask_token(config.remote.token)
    remote["url"] = config.remote.shown_url()
    settings: dict[str, Any] = {
        "node": config.node.model_dump(mode="json"),
        "server": config.server.model_dump(mode="json"),
        "policy": config.policy.model_dump(mode="json"),
        "remote": remote,
    }
    return ConfigDocument(containers=containers, settings=settings)


def _invalid(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'container'}: {e['msg']}" for e in exc.errors()
    )


async def _apply(agent: Agent, document: ConfigDocument) -> list[AppliedContainer]:
    """Create the pulled containers this agent does not have; each checked like the API does."""
    manager = agent.manager
    bus: EventBus = agent.bus
    results: list[AppliedContainer] = []
    for item in document.containers:
        raw_id = item.get("id")
        given = raw_id if isinstance(raw_id, str) else None
        try:
            spec = ContainerSpec.model_validate(item)
        except ValidationError as exc:
            results.append(AppliedContainer(id=given, outcome="invalid", detail=_invalid(exc)))
            continue
        if spec.id in manager.servers:
            results.append(AppliedContainer(id=spec.id, outcome="exists", detail="left as it is"))
            continue
        refusal = bus.refusal()
        if refusal:
            results.append(AppliedContainer(id=spec.id, outcome="refused", detail=refusal))
            continue
        try:
            await manager.create(spec)
        except AgentError as exc:
            results.append(AppliedContainer(id=spec.id, outcome="refused", detail=exc.message))
            continue
        results.append(AppliedContainer(id=spec.id, outcome="created", detail="installing"))
    return results


@asynccontextmanager
async def remote_subsystem(agent: Agent) -> AsyncIterator[RemoteSync]:
    """Run remote sync for the life of the agent."""
    config: AgentConfig = agent.config
    sync = RemoteSync(
        config.remote,
        config.storage.state_dir,
        reload_settings=lambda: _reloader(agent),
        config_document=lambda: _document(agent),
        apply_config=lambda document: _apply(agent, document),
        server_info=lambda: agent.config.server.model_dump(mode="json"),
        coordinator_proof=_proof(agent),
    )
    sync.attach(agent.bus)
    agent.remote_sync = sync
    agent.health_sections["remote"] = lambda: sync.snapshot().model_dump(mode="json")
    try:
        await sync.start()
        yield sync
    finally:
        await sync.stop()
        agent.health_sections.pop("remote", None)
        agent.remote_sync = None
        sync.close()


def extra_outbox_file(name: str) -> str:
    """The outbox of the ``remotes`` entry ``name``: its own file, so deliveries are independent."""
    return f"remote-outbox-{name}.sqlite3"


@asynccontextmanager
async def remotes_subsystem(agent: Agent) -> AsyncIterator[list[RemoteSync]]:
    """Run one :class:`RemoteSync` per ``remotes`` entry, each with its own outbox.

    Every one is a durable listener and a gate on the bus, exactly like ``remote``: an update
    is committed to each enabled remote's outbox before the lifecycle action goes on, and a
    full outbox of any of them refuses new actions. They share nothing else, so a remote that
    is down delays only its own deliveries. Their state is the ``remotes`` section of
    ``GET /health``. ``POST /remote/config/reload`` reloads only ``remote``.
    """
    config: AgentConfig = agent.config
    syncs: list[RemoteSync] = []
    for entry in config.remotes:
        settings = RemoteSettings.model_validate(entry.model_dump(exclude={"name"}))
        sync = RemoteSync(
            settings,
            config.storage.state_dir,
            outbox_file=extra_outbox_file(entry.name),
            server_info=lambda: agent.config.server.model_dump(mode="json"),
            coordinator_proof=_proof(agent),
        )
        sync.attach(agent.bus)
        syncs.append(sync)
    names = [entry.name for entry in config.remotes]
    if syncs:
        agent.health_sections["remotes"] = lambda: {
            name: sync.snapshot().model_dump(mode="json")
            for name, sync in zip(names, syncs, strict=True)
        }
    agent.extra_remotes = dict(zip(names, syncs, strict=True))
    try:
        for sync in syncs:
            await sync.start()
        yield syncs
    finally:
        for sync in syncs:
            await sync.stop()
        agent.health_sections.pop("remotes", None)
        for sync in syncs:
            sync.close()
