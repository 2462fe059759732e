"""Dispatch tokens: the only module of the agent that imports the JWT library.

The coordinator proves itself on every ``POST /commands`` with a short-lived HS256 JWT signed
with this agent's *dispatch key*: a random secret made on the agent's first start
(:func:`load_dispatch_key`, kept owner-only in ``<state_dir>/dispatch.key``) and sent to the
coordinator only in the body of the registration (authenticated with ``coordinator.token``). No
other host knows it, so a token for this node can only come from the coordinator this agent
registered with, and this agent's key opens nothing else anywhere.

The same key works the other way: :func:`node_proof` signs a short-lived JWT that the agent
sends to the coordinator (``X-Lightd-Node-Proof``) to show it is the node that enrolled under
its id. Its claims (``iss`` = ``lightd-agent``, ``aud`` = the proof audience) can never pass as a
command token, whose ``aud`` is the node and ``iss`` the coordinator.

:func:`verify_dispatch_token` makes the checks the coordinator's contract lists
(``docs/coordinator.md``, "The agent side"): ``alg`` exactly HS256 (checked before anything
else, so ``none`` never passes), the signature, ``exp`` (a few seconds of leeway), ``aud`` = this
node, ``sub``/``iss`` = the coordinator, ``jti`` = the command id. python-jose does the
cryptography; the claims are read with the shared :class:`~lightd_shared.dispatch.DispatchClaims`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lightd_shared.dispatch import (
    DISPATCH_ISSUER,
    DISPATCH_KEY_MIN_LENGTH,
    DISPATCH_SUBJECT,
    NODE_PROOF_AUDIENCE,
    NODE_PROOF_ISSUER,
    DispatchClaims,
)

__all__ = [
    "ALGORITHM",
    "DISPATCH_KEY_FILE",
    "NODE_PROOF_LIFETIME",
    "DispatchTokenError",
    "NodeProofSigner",
    "load_dispatch_key",
    "new_dispatch_key",
    "node_proof",
    "verify_dispatch_token",
]

ALGORITHM = "HS256"
DISPATCH_KEY_FILE = "dispatch.key"
NODE_PROOF_LIFETIME = 300
"""Seconds a node proof is valid; a fresh one is signed when less than a third is left."""

log = logging.getLogger("lightd_agent.security")


class DispatchTokenError(ValueError):
    """A command's bearer token does not authorise it; the message says why (never the token)."""


def new_dispatch_key() -> str:
    """256 random bits, URL-safe: this process's key for verifying the coordinator's commands."""
    return secrets.token_urlsafe(32)


def load_dispatch_key(state_dir: Path) -> str:
    """This node's dispatch key: read from ``<state_dir>/dispatch.key``, made there if missing.

    The key outlives restarts because the coordinator binds the node id to it: an agent that
    comes back with another key cannot speak for its old id until an operator deletes the node.
    The file is written atomically and owner-only (``0600``); an unreadable or too short file is
    replaced with a warning that says what follows from it.
    """
    path = state_dir / DISPATCH_KEY_FILE
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("dispatch key file %s is unreadable (%s); making a new key", path, exc)
        key = ""
    if key is not None and len(key) >= DISPATCH_KEY_MIN_LENGTH:
        return key
    if key is not None:
        log.warning(
            "dispatch key file %s is damaged; made a new key. If this node was enrolled with a "
            "coordinator, an operator must delete it there (lightd-coordinator nodes delete "
            "<id>) before it can enrol again",
            path,
        )
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = new_dispatch_key()
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".dispatch-", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return key


def node_proof(key: str, node_id: str, *, expires_in: int) -> str:
    """A JWT that proves to the coordinator that this agent holds ``node_id``'s dispatch key."""
    now = int(time.time())
    claims = {
        "iss": NODE_PROOF_ISSUER,
        "sub": node_id,
        "aud": NODE_PROOF_AUDIENCE,
        "iat": now,
        "exp": now + expires_in,
    }
    from jose import jwt  # imported on first use: ~9 MiB an agent without commands never holds

    return str(jwt.encode(claims, key, algorithm=ALGORITHM))


class NodeProofSigner:
    """This node's ``X-Lightd-Node-Proof`` value, signed afresh only when it gets old.

    One proof is reused until two thirds of its life are over, so a busy sender (heartbeats,
    remote updates) does not sign a JWT per request, and the coordinator never sees one that
    expires in flight. Used by enrolment and by remote sync to the coordinator.
    """

    def __init__(
        self,
        key: str,
        node_id: str,
        *,
        lifetime: int = NODE_PROOF_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._node_id = node_id
        self._lifetime = lifetime
        self._clock = clock
        self._proof: tuple[str, float] | None = None  # (token, when to sign a new one)

    def __call__(self) -> str:
        now = self._clock()
        if self._proof is None or now >= self._proof[1]:
            token = node_proof(self._key, self._node_id, expires_in=self._lifetime)
            self._proof = (token, now + self._lifetime * 2 / 3)
        return self._proof[0]


def verify_dispatch_token(
    authorization: str | None,
    key: str,
    *,
    node_id: str,
    command_id: str | None,
    leeway: int = 5,
    subject: str = DISPATCH_SUBJECT,
) -> DispatchClaims:
    """Check a ``POST /commands`` ``Authorization`` header; raise :class:`DispatchTokenError`.

    ``subject`` is ``"coordinator"`` for commands; the log follow's tokens carry another one
    (``lightd_shared.stats.LOG_FOLLOW_SUBJECT``), so neither opens the other's route.

    ``command_id`` ``None`` defers the ``jti`` check to the caller (which reads the body after
    the token proved to be the coordinator's).
    """
    if not authorization or not authorization.startswith("Bearer "):
        raise DispatchTokenError("missing bearer token")
    token = authorization.removeprefix("Bearer ").strip()
    # imported on first use: python-jose and cryptography hold ~9 MiB that an agent which is
    # never sent a command (no coordinator) does not need
    from jose import JWTError, jwt
    from jose.exceptions import ExpiredSignatureError, JWTClaimsError

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
    if claims.sub != subject or claims.iss != DISPATCH_ISSUER:
        raise DispatchTokenError("token was not issued by the coordinator")
    if command_id is not None and claims.jti != command_id:
        raise DispatchTokenError("token is for another command")
    return claims
