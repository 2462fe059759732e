"""The ceiling of figure 3: a bare Starlette endpoint doing no work, served exactly like the
coordinator (``lightd-coordinator start``: same uvicorn options, same logging set-up, access
log included), so the only difference from the coordinator is the coordinator's own work.

``python -m bench.ceiling CONFIG.yaml`` serves ``POST /noop`` on the config's host and port.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lightd_coordinator.config import load_settings
from lightd_coordinator.logs import configure_logging

__all__ = ["build_app"]


def build_app() -> Starlette:
    async def noop(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    return Starlette(routes=[Route("/noop", noop, methods=["POST"])])


def main(config_path: str) -> None:
    settings = load_settings(config_path)
    configure_logging(
        settings.logging, secrets=[settings.server.auth_token, settings.auth.jwt_secret]
    )
    # The same options as lightd_coordinator.cli's `start`.
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(),
            host=settings.server.host,
            port=settings.server.port,
            log_config=None,
            timeout_keep_alive=max(1, int(settings.server.idle_timeout.total_seconds())),
            timeout_graceful_shutdown=5,
        )
    )
    server.run()


if __name__ == "__main__":
    main(sys.argv[1])
