"""Config sync: ``GET {url}/config`` (pull, optionally applied) and ``POST {url}/config`` (push)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from lightd_agent.remote.client import RemoteClient, RemoteError
from lightd_agent.remote.health import TOKEN_HINT
from lightd_shared.remote import AppliedContainer, ConfigDocument, ConfigPull, mask_url

__all__ = ["PULLED_CONFIG_FILE", "ConfigSync", "RemoteCallFailed", "RemoteDisabled"]

log = logging.getLogger("lightd_agent.remote")

PULLED_CONFIG_FILE = "remote-config.json"


class RemoteDisabled(Exception):
    """An operator asked for a remote call while ``remote.enabled`` is false."""


class RemoteCallFailed(Exception):
    """An operator-triggered call (config pull/push) got no usable answer from the remote."""


class ConfigSync:
    def __init__(
        self,
        state_dir: Path,
        client: Callable[[], RemoteClient],
        *,
        config_document: Callable[[], ConfigDocument] | None = None,
        apply_config: Callable[[ConfigDocument], Awaitable[list[AppliedContainer]]] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self._client = client
        self._config_document = config_document
        self._apply_config = apply_config

    async def pull(self, *, apply: bool = False) -> ConfigPull:
        """``GET {url}/config``: validate it, keep a copy in the state directory.

        With ``apply``, the pulled containers this agent does not have yet are created (each
        validated and checked like ``POST /containers``); existing ones are left alone.
        """
        client = self._client()
        if apply and self._apply_config is None:
            raise RemoteDisabled("this agent cannot apply pulled containers (no server manager)")
        try:
            response = await client.get_config()
        except RemoteError as exc:
            raise RemoteCallFailed(str(exc)) from exc
        if not response.is_success:
            hint = f": {TOKEN_HINT}" if response.status_code in (401, 403) else ""
            raise RemoteCallFailed(
                f"GET {mask_url(response.request.url)} answered HTTP {response.status_code}{hint}"
            )
        try:
            document = ConfigDocument.model_validate(response.json())
        except ValueError as exc:
            raise RemoteCallFailed(
                f"GET {mask_url(response.request.url)} did not answer a config document "
                f'{{"containers": [...], "settings": {{...}}}}: {exc}'
            ) from exc
        target = self.state_dir / PULLED_CONFIG_FILE
        temporary = target.with_suffix(".tmp")
        temporary.write_text(document.model_dump_json(indent=2), encoding="utf-8")
        temporary.replace(target)
        log.info(
            "pulled configuration from the remote: %d containers, %d settings",
            len(document.containers),
            len(document.settings),
        )
        applied: list[AppliedContainer] = []
        if apply and self._apply_config is not None:
            applied = await self._apply_config(document)
            log.info(
                "applied the pulled configuration: %s",
                ", ".join(f"{a.id or '?'} {a.outcome}" for a in applied) or "no containers",
            )
        return ConfigPull(config=document, applied=applied)

    def document(self) -> ConfigDocument:
        """The agent's own configuration as the seed's ``{"containers", "settings"}``."""
        if self._config_document is not None:
            return self._config_document()
        return ConfigDocument(containers=[], settings={})

    async def push(self) -> ConfigDocument:
        """``POST {url}/config`` with the agent's own configuration; return what was sent."""
        client = self._client()
        document = self.document()
        try:
            response = await client.post_config(document)
        except RemoteError as exc:
            raise RemoteCallFailed(str(exc)) from exc
        if not response.is_success:
            hint = f": {TOKEN_HINT}" if response.status_code in (401, 403) else ""
            raise RemoteCallFailed(
                f"POST {mask_url(response.request.url)} answered HTTP {response.status_code}{hint}"
            )
        log.info("pushed configuration to the remote (%d containers)", len(document.containers))
        return document
