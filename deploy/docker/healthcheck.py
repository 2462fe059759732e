"""Container health check for both lightd images: GET /health on the program's own port.

Slim images have no curl, so Docker's HEALTHCHECK runs this with the image's Python:

    healthcheck.py agent /etc/lightd/config.json
    healthcheck.py coordinator /etc/lightd-coordinator/config.yaml

The port comes from where the program itself takes it, in the same order: the environment
overrides (LIGHTD_SERVER__PORT; VENDETTA_COORD_PORT, LIGHTD_COORD_SERVER__PORT), then the config
file, then the default (8070, 3001). So a container started with another port stays healthy
without a second setting.
Exit 0 when /health answers 2xx, 1 otherwise (with the reason on stderr for `docker inspect`).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

PROGRAMS = {
    # program: (port env overrides, host env overrides, default port), strongest first
    "agent": (("LIGHTD_SERVER__PORT",), ("LIGHTD_SERVER__HOST",), 8070),
    "coordinator": (
        ("VENDETTA_COORD_PORT", "LIGHTD_COORD_SERVER__PORT"),
        ("VENDETTA_COORD_HOST", "LIGHTD_COORD_SERVER__HOST"),
        3001,
    ),
}


def _env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def _server_section(config: Path) -> dict[str, Any]:
    """The config file's `server` section, or {} when the file is absent or unreadable."""
    try:
        text = config.read_text(encoding="utf-8")
    except OSError:
        return {}
    try:
        if config.suffix in {".yaml", ".yml"}:
            import yaml  # only the coordinator's image has PyYAML, and only it needs it

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception:
        return {}
    section = data.get("server") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


def health_url(program: str, config: Path) -> str:
    port_envs, host_envs, default_port = PROGRAMS[program]
    server = _server_section(config)
    port = _env(port_envs) or server.get("port") or default_port
    host = str(_env(host_envs) or server.get("host") or "")
    if host in {"", "0.0.0.0", "::", "[::]", "localhost"}:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/health"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in PROGRAMS:
        sys.stderr.write("usage: healthcheck.py agent|coordinator CONFIG_PATH\n")
        return 2
    url = health_url(argv[1], Path(argv[2]))
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = response.status
    except Exception as exc:
        sys.stderr.write(f"unhealthy: GET {url} failed: {exc}\n")
        return 1
    if not 200 <= status < 300:
        sys.stderr.write(f"unhealthy: GET {url} answered {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
