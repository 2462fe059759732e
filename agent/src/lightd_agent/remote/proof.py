"""Which remote gets this node's proof: the coordinator's remote endpoint, and nothing else.

The coordinator serves the remote-sync contract under ``{coordinator.url}/api/v1/remote/<node
id>`` and, for an enrolled node, wants ``X-Lightd-Node-Proof`` (a JWT signed with the node's
dispatch key, see :mod:`lightd_agent.security`) so that no other agent holding the shared
token can post updates in this node's name. A proof must never reach anyone else: a
third-party panel that got one could replay it to the coordinator for its few minutes of life.
So a remote gets it only when ``coordinator.enabled`` is true and the remote's url starts with
``coordinator.url`` (both normalised to end in one ``/``, so ``http://coord:3001`` does not
match ``http://coord:30011``).

With several coordinator replicas (``coordinator.urls``) each of them counts as the
coordinator, and a remote under one of them may fail over to the same path on the others
(:meth:`CoordinatorProof.alternates`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lightd_agent.config import AgentConfig
from lightd_agent.security import NodeProofSigner

__all__ = ["CoordinatorProof", "coordinator_proof"]


def _base(url: object) -> str:
    return str(url).rstrip("/") + "/"


@dataclass(frozen=True)
class CoordinatorProof:
    """The coordinator replicas' base urls and this node's proof signer."""

    base_url: str
    sign: Callable[[], str]
    more_urls: tuple[str, ...] = ()
    """The other replicas' base urls (``coordinator.urls``)."""

    def _bases(self) -> list[str]:
        return [self.base_url, *self.more_urls]

    def _under(self, url: object) -> str | None:
        return next((b for b in self._bases() if _base(url).startswith(_base(b))), None)

    def for_url(self, url: object) -> Callable[[], str] | None:
        """The signer if ``url`` is under a coordinator replica's url, else ``None``."""
        if url is None:
            return None
        return self.sign if self._under(url) is not None else None

    def alternates(self, url: object) -> list[str]:
        """``url`` moved onto every other replica (same path), in order; ``[]`` if not ours."""
        base = None if url is None else self._under(url)
        if base is None:
            return []
        rest = str(url)[len(base.rstrip("/")) :]
        return [other.rstrip("/") + rest for other in self._bases() if other != base]


def coordinator_proof(config: AgentConfig, dispatch_key: str | None) -> CoordinatorProof | None:
    """The proof for the configured coordinator, or ``None`` when there is none to prove to."""
    coordinator = config.coordinator
    bases = coordinator.bases()
    if not coordinator.enabled or not bases or not dispatch_key:
        return None
    return CoordinatorProof(
        base_url=_base(bases[0]),
        sign=NodeProofSigner(dispatch_key, config.node.id),
        more_urls=tuple(_base(b) for b in bases[1:]),
    )
