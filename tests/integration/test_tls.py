"""TLS with real processes on loopback and certificates the test makes (trustme).

A coordinator and an agent both serving HTTPS: the agent enrols over HTTPS trusting only the
test's CA, and a command dispatched through the coordinator reaches the agent over mutual TLS
(the agent takes only callers with a certificate of that CA). An agent that does not trust the
coordinator's certificate never registers and says why; unusable certificate files are config
errors of both programs, not half-started servers.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml

from tests.harness.servers import free_port
from tests.integration.fleet import (
    API_TOKEN,
    LIGHTD,
    STATIC,
    AgentProcess,
    CoordinatorProcess,
    agent_document,
    coordinator_document,
    run_agent,
    start_coordinator,
    wait_until,
)


@dataclass
class Pki:
    ca: Path
    cert: Path  # 127.0.0.1 / localhost, for both servers
    key: Path
    client_cert: Path  # the coordinator's client certificate towards agents
    client_key: Path
    rogue_ca: Path  # a CA nobody trusts
    authority: trustme.CA

    def verify(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if with_client_cert:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    authority = trustme.CA(organization_name="lightd test CA")
    server = authority.issue_cert("127.0.0.1", "localhost")
    client = authority.issue_cert("lightd-coordinator")
    rogue = trustme.CA(organization_name="somebody else")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "ccert", "ckey")}
    authority.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["ccert"]))
    client.private_key_pem.write_to_path(str(paths["ckey"]))
    rogue.cert_pem.write_to_path(str(tmp_path / "rogue.pem"))
    return Pki(
        paths["ca"],
        paths["cert"],
        paths["key"],
        paths["ccert"],
        paths["ckey"],
        tmp_path / "rogue.pem",
        authority,
    )


def _coordinator(tmp: Path, pki: Pki) -> CoordinatorProcess:
    tls = {
        "cert_file": str(pki.cert),
        "key_file": str(pki.key),
        "ca_bundle": str(pki.ca),
        "client_cert_file": str(pki.client_cert),
        "client_key_file": str(pki.client_key),
        "agent_https": True,
    }
    return start_coordinator(tmp, server={"tls": tls}, verify=pki.verify())


def _agent(
    tmp: Path, coordinator: str, node_id: str, tls: dict[str, Any], verify: Any
) -> AgentProcess:
    document = agent_document(tmp, coordinator, node_id, allow_exec=True)
    document["server"]["tls"] = tls
    return run_agent(tmp, document, scheme="https" if "cert_file" in tls else "http", verify=verify)


def test_agent_enrols_over_https_and_takes_commands_over_mutual_tls(
    tmp_path: Path, pki: Pki
) -> None:
    coordinator = _coordinator(tmp_path, pki)
    agent: AgentProcess | None = None
    try:
        agent = _agent(
            tmp_path,
            coordinator.url,
            "tls-agent",
            {
                "cert_file": str(pki.cert),
                "key_file": str(pki.key),
                "client_ca_file": str(pki.ca),
                "ca_bundle": str(pki.ca),
            },
            pki.verify(with_client_cert=True),
        )
        with httpx.Client(
            base_url=coordinator.url,
            verify=pki.verify(),
            headers={"Authorization": f"Bearer {STATIC}"},
            timeout=30,
        ) as client:

            def enrolled() -> dict[str, Any] | None:
                answer = client.get("/api/v1/nodes/tls-agent")
                return answer.json() if answer.status_code == 200 else None

            node = wait_until(enrolled, what="the agent enrolled over HTTPS")
            assert node["health_url"].startswith("https://")
            result = client.post(
                "/api/v1/nodes/tls-agent/commands",
                json={"type": "exec", "action": "echo 'hello world'"},
            )
            assert result.status_code == 200, result.text
            assert result.json()["status"] == "success", result.json()
            assert result.json()["output"].strip() == "hello world"

        # The agent takes no caller without a client certificate of the CA (TLS 1.3 tells the
        # client after its handshake: the connection ends without an answer).
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{agent.url}/health", verify=pki.verify(), timeout=5).raise_for_status()
        # Plain HTTP to an HTTPS coordinator gets no API answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{coordinator.port}/health", timeout=5).raise_for_status()

        def health() -> dict[str, Any]:
            answer = httpx.get(
                f"{agent.url}/health",  # type: ignore[union-attr]
                verify=pki.verify(with_client_cert=True),
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            )
            result: dict[str, Any] = answer.json()
            return result

        assert health()["coordinator"]["registered"] is True
        # remote sync to the coordinator goes over HTTPS too, trusting server.tls.ca_bundle
        wait_until(lambda: health()["remote"]["remote"] == "ok", what="remote sync over HTTPS")
        assert health()["remote"]["last_error"] is None
    finally:
        if agent is not None:
            agent.stop()
        coordinator.stop()


def test_an_untrusted_coordinator_certificate_is_refused_with_a_clear_error(
    tmp_path: Path, pki: Pki
) -> None:
    coordinator = _coordinator(tmp_path, pki)
    agent: AgentProcess | None = None
    try:
        agent = _agent(
            tmp_path, coordinator.url, "wary-agent", {"ca_bundle": str(pki.rogue_ca)}, True
        )

        def refused() -> str | None:
            health = httpx.get(f"{agent.url}/health", timeout=5).json()  # type: ignore[union-attr]
            error: str | None = health["coordinator"]["last_error"]
            return error

        error = wait_until(refused, what="a certificate error")
        assert "CERTIFICATE_VERIFY_FAILED" in error
        assert "server.tls.ca_bundle" in error
        with httpx.Client(
            base_url=coordinator.url,
            verify=pki.verify(),
            headers={"Authorization": f"Bearer {STATIC}"},
        ) as client:
            assert client.get("/api/v1/nodes/wary-agent").status_code == 404
        assert "certificate is not trusted" in agent.logs()
    finally:
        if agent is not None:
            agent.stop()
        coordinator.stop()


def test_unusable_certificate_files_are_config_errors_of_both_programs(
    tmp_path: Path, pki: Pki
) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("this is no certificate\n")
    document = agent_document(tmp_path, "http://127.0.0.1:9", "bad-tls", allow_exec=False)
    document["server"]["tls"] = {"cert_file": str(pki.cert)}
    agent_config = tmp_path / "agent.json"
    agent_config.write_text(json.dumps(document))
    agent = subprocess.run(
        [LIGHTD, "run", "-c", str(agent_config)], capture_output=True, text=True, timeout=60
    )
    assert agent.returncode == 2, agent.stderr
    assert "server.tls: cert_file and key_file must be set together" in agent.stderr

    document["server"]["tls"] = {"cert_file": str(pki.cert), "key_file": str(not_pem)}
    agent_config.write_text(json.dumps(document))
    agent = subprocess.run(
        [LIGHTD, "run", "-c", str(agent_config)], capture_output=True, text=True, timeout=60
    )
    assert agent.returncode == 2, agent.stderr
    assert "not a usable PEM file" in agent.stderr

    settings = coordinator_document(
        free_port(), server={"tls": {"cert_file": str(pki.cert), "key_file": str(not_pem)}}
    )
    coordinator_config = tmp_path / "coordinator.yaml"
    coordinator_config.write_text(yaml.safe_dump(settings))
    coordinator = subprocess.run(
        [sys.executable, "-m", "lightd_coordinator", "start", "-c", str(coordinator_config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert coordinator.returncode != 0
    assert "not a usable PEM file" in coordinator.stderr, coordinator.stderr
    assert "Traceback" not in coordinator.stderr + agent.stderr


def test_the_coordinator_refuses_an_agent_certificate_it_does_not_trust(
    tmp_path: Path, pki: Pki
) -> None:
    tls = {
        "cert_file": str(pki.cert),
        "key_file": str(pki.key),
        "ca_bundle": str(pki.rogue_ca),  # agents' certificates are not of this CA
        "agent_https": True,
    }
    coordinator = start_coordinator(
        tmp_path, server={"tls": tls}, registry={"max_retries": 0}, verify=pki.verify()
    )
    agent: AgentProcess | None = None
    try:
        agent_tls = {"cert_file": str(pki.cert), "key_file": str(pki.key), "ca_bundle": str(pki.ca)}
        agent = _agent(tmp_path, coordinator.url, "doubted-agent", agent_tls, pki.verify())
        with httpx.Client(
            base_url=coordinator.url,
            verify=pki.verify(),
            headers={"Authorization": f"Bearer {STATIC}"},
        ) as client:
            wait_until(
                lambda: client.get("/api/v1/nodes/doubted-agent").status_code == 200,
                what="the agent enrolled",
            )
            result = client.post(
                "/api/v1/nodes/doubted-agent/commands",
                json={"type": "exec", "action": "echo 'never run'"},
            ).json()
        assert result["status"] == "failed"
        assert "unreachable at https://" in result["output"]
        assert "CERTIFICATE_VERIFY_FAILED" in result["output"]
    finally:
        if agent is not None:
            agent.stop()
        coordinator.stop()
