"""Certificate files are checked once, at config time, with messages that name the setting."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from lightd_agent.config import AgentConfig
from lightd_coordinator.config import ConfigError, load_settings
from lightd_shared.tls import TlsError, check_server_files, client_context, uvicorn_options


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    other = trustme.CA().issue_cert("127.0.0.1")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "other_key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    other.private_key_pem.write_to_path(str(paths["other_key"]))
    (tmp_path / "junk.pem").write_text("no PEM here\n")
    paths["junk"] = tmp_path / "junk.pem"
    return paths


def test_good_files_pass_and_become_uvicorn_options(files: dict[str, Path]) -> None:
    check_server_files(files["cert"], files["key"], files["ca"])
    options = uvicorn_options(files["cert"], files["key"], files["ca"])
    assert options["ssl_certfile"] == str(files["cert"])
    assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert uvicorn_options(None, None) == {}
    context = client_context(files["ca"])
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize(
    ("cert", "key", "client_ca", "message"),
    [
        ("cert", None, None, "cert_file and key_file must be set together"),
        (None, None, "ca", "client_ca_file needs cert_file and key_file"),
        ("cert", "other_key", None, "cert_file/key_file: not a usable PEM file"),
        ("cert", "junk", None, "cert_file/key_file: not a usable PEM file"),
        ("cert", "key", "junk", "client_ca_file: not a usable PEM file"),
        ("missing", "key", None, "cert_file/key_file: no such file"),
    ],
)
def test_bad_server_files_are_refused(
    files: dict[str, Path],
    tmp_path: Path,
    cert: str | None,
    key: str | None,
    client_ca: str | None,
    message: str,
) -> None:
    def path(name: str | None) -> Path | None:
        return None if name is None else files.get(name, tmp_path / f"{name}.pem")

    with pytest.raises(TlsError, match=message):
        check_server_files(path(cert), path(key), path(client_ca))


def test_a_bad_ca_bundle_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(TlsError, match="ca_bundle: not a usable PEM file"):
        client_context(files["junk"])
    with pytest.raises(TlsError, match="client_cert_file and client_key_file"):
        client_context(files["ca"], files["cert"], None)


def test_both_programs_report_them_as_config_errors(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"server\.tls[\s\S]*ca_bundle: not a usable PEM file"):
        AgentConfig.model_validate(
            {
                "authorization": {"enabled": False},
                "server": {"tls": {"ca_bundle": str(files["junk"])}},
            }
        )
    config = tmp_path / "c.yaml"
    config.write_text(f"server:\n  tls:\n    cert_file: {files['cert']}\n")
    with pytest.raises(ConfigError, match=r"server\.tls: cert_file and key_file must be set"):
        load_settings(config)
