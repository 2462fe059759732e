"""Dispatch tokens: the only module of the agent that imports the JWT library.

The coordinator proves itself on every ``POST /commands`` with a short-lived HS256 JWT signed
with this agent's *dispatch key*: a random secret made fresh by every agent process
(:func:`new_dispatch_key`) and sent to the coordinator only in the body of the registration
(authenticated with ``coordinator.token``). No other host knows it, so a token for this node
can only come from the coordinator this agent registered with, and this agent's key opens
nothing else anywhere.

:func:`verify_dispatch_token` makes the checks the coordinator's contract lists
(``docs/coordinator.md``, "The agent side"): ``alg`` exactly HS256 (checked before anything
else, so ``none`` never passes), the signature, ``exp`` (a few seconds of leeway), ``aud`` = this
node, ``sub``/``iss`` = the coordinator, ``jti`` = the command id. python-jose does the
cryptography; the claims are read with the shared :class:`~lightd_shared.dispatch.DispatchClaims`.
"""

from __future__ import annotations

import secrets
from typing import Any

from jose import JWTError, jwt
from jose.exceptions import ExpiredSignatureError, JWTClaimsError
from pydantic import ValidationError

from lightd_shared.dispatch import DISPATCH_ISSUER, DISPATCH_SUBJECT, DispatchClaims

__all__ = ["ALGORITHM", "DispatchTokenError", "new_dispatch_key", "verify_dispatch_token"]

ALGORITHM = "HS256"


class DispatchTokenError(ValueError):
    """A command's bearer token does not authorise it; the message says why (never the token)."""


def new_dispatch_key() -> str:
    """256 random bits, URL-safe: this process's key for verifying the coordinator's commands."""
    return secrets.token_urlsafe(32)


def verify_dispatch_token(
    authorization: str | None,
    key: str,
    *,
    node_id: str,
    command_id: str | None,
    leeway: int = 5,
) -> DispatchClaims:
    """Check a ``POST /commands`` ``Authorization`` header; raise :class:`DispatchTokenError`.

    ``command_id`` ``None`` defers the ``jti`` check to the caller (which reads the body after
    the token proved to be the coordinator's).
    """
    if not authorization or not authorization.startswith("Bearer "):
        raise DispatchTokenError("missing bearer token")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        header = jwt.get_unverified_header(token)
    except JWTError as exc:
        raise DispatchTokenError("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise DispatchTokenError(f"token algorithm must be {ALGORITHM}")
    try:
        raw: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={
                "verify_aud": False,  # checked below, with a clearer message
                "require_exp": True,
                "require_iat": True,
                "require_jti": True,
                "leeway": leeway,
            },
        )
    except ExpiredSignatureError as exc:
        raise DispatchTokenError("token has expired") from exc
    except JWTClaimsError as exc:
        raise DispatchTokenError("token claims are incomplete") from exc
    except JWTError as exc:
        raise DispatchTokenError("token signature is invalid") from exc
    try:
        claims = DispatchClaims.model_validate(raw)
    except ValidationError as exc:
        raise DispatchTokenError("token claims are incomplete") from exc
    if claims.aud != node_id:
        raise DispatchTokenError("token is for another node")
    if claims.sub != DISPATCH_SUBJECT or claims.iss != DISPATCH_ISSUER:
        raise DispatchTokenError("token was not issued by the coordinator")
    if command_id is not None and claims.jti != command_id:
        raise DispatchTokenError("token is for another command")
    return claims
