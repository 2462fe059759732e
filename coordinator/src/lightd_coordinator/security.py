"""Tokens: the only module that imports the JWT library.

Two kinds of bearer token open the API when ``auth.enabled`` is true:

- the static ``server.auth_token`` (compared in constant time);
- a JWT signed with ``auth.jwt_secret`` using HS256 (pinned: any other ``alg``, ``none``
  included, is refused before the signature is looked at), with ``aud`` = ``lightd-coordinator``,
  a ``sub`` and an ``exp``. ``POST /api/v1/auth/token`` and ``lightd-coordinator token`` mint them.

Agents present a third kind on the routes they call (registration, heartbeat, result
reports, event relay, ``/api/v1/remote/{node_id}/*``): ``auth.agent_token``. It opens only those
routes, never the operator API.

The agent token only *enrols*: once a node id is registered with a dispatch key, a call that
speaks for that node with the agent token must also carry ``X-Lightd-Node-Proof``, a JWT the
agent signs with that key (:func:`verify_node_proof`). So one compromised host cannot take over
another node's id, its heartbeats or its command results.

Commands sent to agents carry a fourth kind, minted by a :class:`NodeTokenSigner`: a short-lived
JWT whose ``aud`` is the node id, signed with *that node's own dispatch key* (a random secret the
agent sent with its registration). So a token for one node opens no other node and not the
coordinator, and an agent host never holds ``auth.jwt_secret``: a compromised agent can mint
neither API tokens nor commands for other nodes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from jose import JWTError, jwt

from lightd_shared.dispatch import (
    DISPATCH_ISSUER,
    DISPATCH_SUBJECT,
    NODE_PROOF_AUDIENCE,
    NODE_PROOF_ISSUER,
)
from lightd_shared.tokens import tokens_equal

__all__ = [
    "ALGORITHM",
    "COORDINATOR_AUDIENCE",
    "InvalidToken",
    "NodeKeySigner",
    "NodeTokenSigner",
    "Principal",
    "TokenVerifier",
    "mint_token",
    "verify_jwt",
    "verify_node_proof",
]

ALGORITHM = "HS256"
COORDINATOR_AUDIENCE = "lightd-coordinator"


class InvalidToken(Exception):
    """A presented token does not open the API; the message says why (never echoes it)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``static`` (the server token) or the JWT's subject."""

    subject: str
    kind: str  # "static", "jwt", "agent" or "anonymous"

    @property
    def is_operator(self) -> bool:
        """Whether the operator API is open to this caller (the agent token opens only agents')."""
        return self.kind != "agent"


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


def verify_jwt(token: str, secret: str, *, audience: str, leeway: int = 0) -> dict[str, Any]:
    """Check a JWT's algorithm, signature, audience and expiry (``leeway`` seconds of clock
    skew allowed); return its claims."""
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
            options={
                "require_exp": True,
                "require_sub": True,
                "require_aud": True,
                "leeway": leeway,
            },
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token has expired") from exc
    except JWTError as exc:
        raise InvalidToken("token signature or claims are invalid") from exc
    return claims


NODE_PROOF_LEEWAY = 60
"""Seconds an agent's clock may be behind the coordinator's: its proofs carry its own ``exp``."""


def verify_node_proof(token: str, key: str, *, node_id: str) -> float:
    """Check an agent's node proof for ``node_id`` against its dispatch key; return until when
    it is accepted (its ``exp`` plus the clock-skew leeway)."""
    claims = verify_jwt(token, key, audience=NODE_PROOF_AUDIENCE, leeway=NODE_PROOF_LEEWAY)
    if claims.get("iss") != NODE_PROOF_ISSUER or claims.get("sub") != node_id:
        raise InvalidToken(f"the proof was not made for node {node_id!r}")
    return float(claims["exp"]) + NODE_PROOF_LEEWAY


class TokenVerifier:
    """Decides whether a bearer token opens the coordinator's API."""

    def __init__(
        self, *, static_token: str, jwt_secret: str, agent_token: str | None = None
    ) -> None:
        self._static = static_token
        self._secret = jwt_secret
        self._agent = agent_token

    def is_static(self, token: str) -> bool:
        return tokens_equal(token, self._static)

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise InvalidToken("missing bearer token")
        if self.is_static(token):
            return Principal(subject="static-token", kind="static")
        if self._agent is not None and tokens_equal(token, self._agent):
            return Principal(subject="agent", kind="agent")
        if token.count(".") != 2:
            raise InvalidToken("token is neither the server token nor a JWT")
        claims = verify_jwt(token, self._secret, audience=COORDINATOR_AUDIENCE)
        return Principal(subject=str(claims["sub"]), kind="jwt")


class NodeTokenSigner(Protocol):
    """Makes the ``Authorization`` value for one command sent to one node.

    ``key`` is the node's dispatch key from its registration. The dispatcher does not ask for
    nodes registered without one (the seed's own registration body, a simple agent an operator
    registered by hand): those chose not to verify and get their commands unsigned. A lightd
    agent always registers with a key, so its commands are always signed. A signer that cannot
    sign raises :class:`InvalidToken`; the command then ends ``failed``.
    """

    def authorization(self, node_id: str, command_id: str, key: str | None) -> str: ...


class NodeKeySigner:
    """``Bearer <JWT>``: ``aud`` = node id, ``jti`` = command id, signed with the node's own key."""

    def __init__(self, *, expires_in: float) -> None:
        self._expires_in = expires_in

    def authorization(self, node_id: str, command_id: str, key: str | None) -> str:
        if not key:
            raise InvalidToken(
                f"node {node_id} registered without a dispatch_key, so it could not verify a "
                "command; register it from a lightd agent (which sends one), or re-register it "
                "with a dispatch_key"
            )
        token = mint_token(
            key,
            subject=DISPATCH_SUBJECT,
            audience=node_id,
            expires_in=self._expires_in,
            token_id=command_id,
        )
        return f"Bearer {token}"
