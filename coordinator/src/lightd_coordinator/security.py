"""Tokens: the only module that imports the JWT library.

Two kinds of bearer token open the API when ``auth.enabled`` is true:

- the static ``server.auth_token`` (compared in constant time);
- a JWT signed with ``auth.jwt_secret`` using HS256 (pinned: any other ``alg``, ``none``
  included, is refused before the signature is looked at), with ``aud`` = ``lightd-coordinator``,
  a ``sub`` and an ``exp``. ``POST /api/v1/auth/token`` and ``lightd-coordinator token`` mint them.

Commands sent to agents carry a third kind, minted by a :class:`NodeTokenSigner`: a short-lived
JWT whose ``aud`` is the node id, so a token for one node opens no other node and not the
coordinator (whose tokens need ``aud`` = ``lightd-coordinator``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from jose import JWTError, jwt

from lightd_shared.dispatch import DISPATCH_ISSUER, DISPATCH_SUBJECT
from lightd_shared.tokens import tokens_equal

__all__ = [
    "ALGORITHM",
    "COORDINATOR_AUDIENCE",
    "InvalidToken",
    "NodeTokenSigner",
    "Principal",
    "SharedSecretSigner",
    "TokenVerifier",
    "mint_token",
    "verify_jwt",
]

ALGORITHM = "HS256"
COORDINATOR_AUDIENCE = "lightd-coordinator"


class InvalidToken(Exception):
    """A presented token does not open the API; the message says why (never echoes it)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``static`` (the server token) or the JWT's subject."""

    subject: str
    kind: str  # "static", "jwt" or "anonymous"


def mint_token(
    secret: str,
    *,
    subject: str,
    audience: str,
    expires_in: float,
    token_id: str | None = None,
    issuer: str = DISPATCH_ISSUER,
) -> str:
    """Sign a HS256 JWT with ``sub``, ``aud``, ``iat``, ``exp`` (and ``jti`` if given)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + max(1, int(expires_in)),
    }
    if token_id is not None:
        claims["jti"] = token_id
    return str(jwt.encode(claims, secret, algorithm=ALGORITHM))


def verify_jwt(token: str, secret: str, *, audience: str) -> dict[str, Any]:
    """Check a JWT's algorithm, signature, audience and expiry; return its claims."""
    try:
        header = jwt.get_unverified_header(token)
    except JWTError as exc:
        raise InvalidToken("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"token algorithm must be {ALGORITHM}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require_exp": True, "require_sub": True, "require_aud": True},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token has expired") from exc
    except JWTError as exc:
        raise InvalidToken("token signature or claims are invalid") from exc
    return claims


class TokenVerifier:
    """Decides whether a bearer token opens the coordinator's API."""

    def __init__(self, *, static_token: str, jwt_secret: str) -> None:
        self._static = static_token
        self._secret = jwt_secret

    def is_static(self, token: str) -> bool:
        return tokens_equal(token, self._static)

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise InvalidToken("missing bearer token")
        if self.is_static(token):
            return Principal(subject="static-token", kind="static")
        if token.count(".") != 2:
            raise InvalidToken("token is neither the server token nor a JWT")
        claims = verify_jwt(token, self._secret, audience=COORDINATOR_AUDIENCE)
        return Principal(subject=str(claims["sub"]), kind="jwt")


class NodeTokenSigner(Protocol):
    """Makes the ``Authorization`` value for one command sent to one node.

    Pluggable: the default signs with one shared secret; a per-node signer would look the
    node's own secret up instead.
    """

    def authorization(self, node_id: str, command_id: str) -> str: ...


class SharedSecretSigner:
    """``Bearer <JWT>`` with ``aud`` = node id and ``jti`` = command id, signed with one secret."""

    def __init__(self, secret: str, *, expires_in: float) -> None:
        self._secret = secret
        self._expires_in = expires_in

    def authorization(self, node_id: str, command_id: str) -> str:
        token = mint_token(
            self._secret,
            subject=DISPATCH_SUBJECT,
            audience=node_id,
            expires_in=self._expires_in,
            token_id=command_id,
        )
        return f"Bearer {token}"
