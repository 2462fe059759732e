"""TLS for both programs: what uvicorn serves with, and what their HTTP clients trust.

One place builds the :mod:`ssl` pieces from the file paths of a configuration, so the agent and
the coordinator load certificates the same way and refuse a bad file the same way: at start,
with :class:`TlsError` naming the setting and the reason (never half-started, never a
traceback).

- :func:`check_server_files` loads ``cert_file``/``key_file`` (and ``client_ca_file``) once, so
  a wrong path, a key that does not match, or a file that is no PEM is a config error;
- :func:`uvicorn_options` turns them into uvicorn's ``ssl_*`` options; with ``client_ca_file``
  the server requires a client certificate signed by that CA (mutual TLS);
- :func:`client_context` is the ``verify=`` of an ``httpx`` client: the system's trust store,
  or only ``ca_bundle``, plus a client certificate to present when one is given.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

__all__ = ["TlsError", "check_server_files", "client_context", "uvicorn_options"]


class TlsError(ValueError):
    """A certificate, key or CA file cannot be used; the message says which and why."""


def _load(what: str, action: Any) -> None:
    try:
        action()
    except FileNotFoundError as exc:
        raise TlsError(f"{what}: no such file ({exc.filename})") from None
    except PermissionError as exc:
        raise TlsError(f"{what}: cannot read it ({exc.filename}): permission denied") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsError(f"{what}: not a usable PEM file ({exc})") from None


def check_server_files(
    cert_file: Path | None,
    key_file: Path | None,
    client_ca_file: Path | None = None,
) -> None:
    """Raise :class:`TlsError` unless the files make a working TLS server (or none is set)."""
    if (cert_file is None) != (key_file is None):
        raise TlsError("cert_file and key_file must be set together")
    if cert_file is None or key_file is None:
        if client_ca_file is not None:
            raise TlsError(
                "client_ca_file needs cert_file and key_file "
                "(client certificates are asked for only over HTTPS)"
            )
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load(
        "cert_file/key_file",
        lambda: context.load_cert_chain(str(cert_file), str(key_file)),
    )
    if client_ca_file is not None:
        _load(
            "client_ca_file",
            lambda: context.load_verify_locations(cafile=str(client_ca_file)),
        )


def uvicorn_options(
    cert_file: Path | None, key_file: Path | None, client_ca_file: Path | None = None
) -> dict[str, Any]:
    """uvicorn's ``ssl_*`` keyword arguments; empty (plain HTTP) without a certificate."""
    if cert_file is None or key_file is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)}
    if client_ca_file is not None:
        options["ssl_ca_certs"] = str(client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options


def client_context(
    ca_bundle: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """An ``httpx`` ``verify=``: verifies servers (host name included) against ``ca_bundle``.

    Without ``ca_bundle`` the system's default trust store is used. ``cert_file``/``key_file``
    are the client certificate presented to servers that ask for one (mutual TLS).
    """
    if ca_bundle is None:
        context = ssl.create_default_context()
    else:
        # only this bundle: a private CA does not widen what the system already trusts
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        _load("ca_bundle", lambda: context.load_verify_locations(cafile=str(ca_bundle)))
    if (cert_file is None) != (key_file is None):
        raise TlsError("client_cert_file and client_key_file must be set together")
    if cert_file is not None and key_file is not None:
        _load(
            "client_cert_file/client_key_file",
            lambda: context.load_cert_chain(str(cert_file), str(key_file)),
        )
    return context
