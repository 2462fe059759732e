"""The agent's ``tls`` section: HTTPS for its API, and what its clients trust.

- ``cert_file`` + ``key_file``: the API is served over HTTPS (``lightd run`` hands them to
  uvicorn); the registration then advertises an ``https://`` health URL, which tells the
  coordinator to dispatch over HTTPS too.
- ``client_ca_file``: only callers presenting a client certificate signed by this CA get a TLS
  connection at all (mutual TLS; the coordinator presents ``tls.client_cert_file``).
- ``ca_bundle``: the CA certificates that verify the coordinator and every remote (the agent's
  clients to them); unset, the public CAs (httpx's default, certifi).

The files are loaded once while the config is validated, so a bad one is a config error that
names the setting (``lightd run`` exits 2), never a half-started agent. The clients' trust is
process-wide (:func:`configure_outbound`, set by ``create_app``): the remote clients are built
deep inside remote sync, which has no reason to know the rest of the config.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lightd_shared.tls import check_server_files, client_context, uvicorn_options

__all__ = ["TlsSection", "configure_outbound", "outbound_verify", "tls_hint"]


class TlsSection(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    cert_file: Path | None = Field(
        default=None, description="PEM certificate (chain) the API serves HTTPS with"
    )
    key_file: Path | None = Field(default=None, description="PEM private key of cert_file")
    client_ca_file: Path | None = Field(
        default=None,
        description="Require client certificates signed by this CA (mutual TLS); needs cert_file",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="CA bundle verifying the coordinator and remotes (default: the public CAs)",
    )

    @model_validator(mode="after")
    def _files_usable(self) -> Self:
        check_server_files(self.cert_file, self.key_file, self.client_ca_file)
        if self.ca_bundle is not None:
            client_context(self.ca_bundle)
        return self

    @property
    def https(self) -> bool:
        return self.cert_file is not None

    def uvicorn_options(self) -> dict[str, Any]:
        return uvicorn_options(self.cert_file, self.key_file, self.client_ca_file)

    def client_verify(self) -> ssl.SSLContext | bool:
        """``verify=`` for clients: ``ca_bundle`` only, or httpx's own default trust (``True``)."""
        return client_context(self.ca_bundle) if self.ca_bundle is not None else True


_outbound: ssl.SSLContext | None = None


def configure_outbound(section: TlsSection) -> None:
    """Make ``section.ca_bundle`` what every client of this process trusts from now on."""
    global _outbound
    verify = section.client_verify()
    _outbound = verify if isinstance(verify, ssl.SSLContext) else None


def outbound_verify() -> ssl.SSLContext | bool:
    """The ``verify=`` of a client to the coordinator or a remote."""
    return _outbound if _outbound is not None else True


def tls_hint(exc: BaseException) -> str:
    """What to do about a TLS failure of a client (``""`` for anything else)."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            "; its TLS certificate is not trusted: set server.tls.ca_bundle to the CA that "
            "signed it (and check the URL's host is named in the certificate)"
        )
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "; TLS failed: does the URL's http:// or https:// match what the server speaks?"
    return ""
