"""The coordinator's ``tls`` section: HTTPS for its API, and TLS towards the agents.

- ``cert_file`` + ``key_file``: the API is served over HTTPS (``lightd-coordinator run``);
  ``client_ca_file`` besides makes every caller present a client certificate signed by it.
- ``ca_bundle``: the CA certificates that verify the agents' certificates when commands are
  dispatched and health URLs probed (unset: the public CAs, httpx's default).
- ``client_cert_file`` + ``client_key_file``: the certificate presented to agents that require
  one (the agent's ``tls.client_ca_file``): mutual TLS on dispatch.
- ``agent_https``: dispatch to every agent over HTTPS. Otherwise a node is reached over HTTPS
  when its registration's ``health_url`` is ``https://`` (an agent serving TLS says so), else
  over HTTP. Set it in production so no registration can choose plain HTTP.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lightd_shared.nodes import NodeRecord
from lightd_shared.pacing import url_host
from lightd_shared.tls import check_server_files, client_context, uvicorn_options

__all__ = ["TlsSettings"]


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    cert_file: Path | None = Field(default=None, description="PEM certificate served (HTTPS)")
    key_file: Path | None = Field(default=None, description="PEM private key of cert_file")
    client_ca_file: Path | None = Field(
        default=None, description="Require client certificates signed by this CA (mutual TLS)"
    )
    ca_bundle: Path | None = Field(
        default=None, description="CA bundle verifying the agents (default: the public CAs)"
    )
    client_cert_file: Path | None = Field(
        default=None, description="Client certificate presented to agents (mutual TLS)"
    )
    client_key_file: Path | None = Field(default=None, description="Key of client_cert_file")
    agent_https: bool = Field(
        default=False, description="Dispatch to every agent over HTTPS, whatever it registered"
    )

    @model_validator(mode="after")
    def _files_usable(self) -> Self:
        check_server_files(self.cert_file, self.key_file, self.client_ca_file)
        self.client_verify()
        return self

    @property
    def https(self) -> bool:
        return self.cert_file is not None

    def uvicorn_options(self) -> dict[str, Any]:
        return uvicorn_options(self.cert_file, self.key_file, self.client_ca_file)

    def client_verify(self) -> ssl.SSLContext | bool:
        """The coordinator's client's ``verify=``: trust and client certificate towards agents.

        ``True`` (httpx's own default trust) when neither is configured.
        """
        if (
            self.ca_bundle is None
            and self.client_cert_file is None
            and self.client_key_file is None
        ):
            return True
        return client_context(self.ca_bundle, self.client_cert_file, self.client_key_file)

    def agent_scheme(self, health_url: str | None) -> str:
        """``https`` or ``http``, for a node that registered ``health_url``."""
        if self.agent_https or (health_url or "").lower().startswith("https://"):
            return "https"
        return "http"

    def agent_url(self, node: NodeRecord, path: str) -> str:
        """The URL of ``path`` on ``node``'s agent: its scheme, address (IPv6 in brackets), port.

        Every request the coordinator makes to an agent (commands, log follows, file and backup
        transfers) is addressed through here."""
        return f"{self.agent_scheme(node.health_url)}://{url_host(node.address)}:{node.port}{path}"
