"""What every fault scenario checks, and how it runs its agent.

The three checks the fault suite makes after each scenario:

- :func:`check_deliveries`: updates sent vs received. Every update the agent sent reached the
  recording remote answered ``200``: per server the sequence numbers of the first
  acknowledgements, in arrival order, are exactly ``1..n`` (in order, no gap; a resend after a
  timeout may repeat one), each number has one idempotency key, and nothing is left in the
  outbox or the dead letters.
- the statuses per server are what the scenario expects (the caller compares
  :func:`statuses`);
- :func:`check_no_orphans`: every container carrying the agent's node label is the main
  container of a server the agent knows (no install container left, nothing unknown), and
  once the servers are deleted nothing with the label remains.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import docker
import httpx

from tests.harness.wait import wait_until
from tests.integration.fleet import AgentProcess, run_agent
from tests.remote.agent import API_TOKEN, agent_config
from tests.remote.recorder import Recorded, RemoteServer

SERVE = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


def start_agent(
    tmp: Path, remote: RemoteServer, *, name: str = "agent", **remote_settings: Any
) -> AgentProcess:
    """A ``lightd run`` process syncing every lifecycle change (``events: all``) to ``remote``."""
    document = agent_config(tmp / name, remote.url, events="all", **remote_settings)
    document["node"]["id"] = f"fault-{uuid.uuid4().hex[:8]}"
    return run_agent(tmp, document, name=name)


def client_of(agent: AgentProcess) -> httpx.Client:
    return httpx.Client(
        base_url=agent.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=60
    )


def spec(server: str, image: str, labels: dict[str, str], install: str | None = None) -> Any:
    body: dict[str, Any] = {
        "id": server,
        "image": image,
        "startup_command": SERVE,
        "labels": labels,
    }
    if install is not None:
        body["install_script"] = install
    return body


def remote_health(client: httpx.Client) -> dict[str, Any]:
    section: dict[str, Any] = client.get("/health").json()["remote"]
    return section


def wait_drained(client: httpx.Client, timeout: float = 60) -> None:
    wait_until(
        lambda: remote_health(client)["outbox_depth"] == 0,
        timeout,
        interval=0.05,
        what="the outbox drained",
    )


def status_of(update: Recorded) -> str:
    body = update.body
    return str(body.get("status") or f"error:{body.get('error')}")


def acknowledged(remote: RemoteServer) -> dict[str, list[Recorded]]:
    """Per server, the first ``200``-answered request of each sequence number, in arrival order."""
    seen: set[str] = set()
    per_server: dict[str, list[Recorded]] = defaultdict(list)
    for update in remote.updates(200):
        key = update.headers["idempotency-key"]
        if key in seen:
            continue  # a resend of an update the agent did not see acknowledged (a timeout)
        seen.add(key)
        per_server[update.body["server"]].append(update)
    return dict(per_server)


def statuses(remote: RemoteServer) -> dict[str, list[str]]:
    return {server: [status_of(u) for u in ups] for server, ups in acknowledged(remote).items()}


def check_deliveries(client: httpx.Client, remote: RemoteServer) -> None:
    """Sent vs received, and order per server (see the module docstring)."""
    wait_drained(client)
    section = remote_health(client)
    assert section["dead_letters"] == 0, section
    assert section["outbox_unwritten"] == 0, section
    keys_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for update in remote.updates(None):
        keys_of[(update.body["server"], update.headers["x-lightd-sequence"])].add(
            update.headers["idempotency-key"]
        )
    assert all(len(keys) == 1 for keys in keys_of.values()), keys_of
    for server, updates in acknowledged(remote).items():
        sequences = [int(u.headers["x-lightd-sequence"]) for u in updates]
        assert sequences == list(range(1, len(sequences) + 1)), (server, sequences)


def check_no_orphans(
    client: httpx.Client, docker_client: docker.DockerClient, node_id: str
) -> None:
    """Only the known servers' main containers carry the node's label; none after deletes."""
    known = {server["id"] for server in client.get("/containers").json()["containers"]}
    owned = docker_client.containers.list(all=True, filters={"label": f"lightd.node={node_id}"})
    roles = sorted(
        (c.labels.get("lightd.server", ""), c.labels.get("lightd.role", "")) for c in owned
    )
    # a server may have no container (a failed install); a container must have its server
    assert all(role == "server" and server in known for server, role in roles), (roles, known)
    assert len({server for server, _ in roles}) == len(roles), roles  # one main container each
    for server in known:
        answer = client.delete(f"/containers/{server}")
        assert answer.status_code in (200, 202, 204), answer.text
    wait_until(
        lambda: (
            not docker_client.containers.list(all=True, filters={"label": f"lightd.node={node_id}"})
        ),
        30,
        interval=0.1,
        what="no container left after every server was deleted",
    )
