"""An enrolment tap for figure 5, run as its own process: ``python -m bench.tap PORT UPSTREAM``.

Figure 5 compares a command sent through the coordinator with the same ``POST /commands`` sent
straight to the agent. The straight call needs a dispatch token, signed with the key the agent
makes at start and sends only in its registration. The agent's ``coordinator.url`` therefore
points here: every request is forwarded unchanged to the coordinator, and the key of each
registration is kept (``GET /__tap/key?node=ID``). Only the agent's own calls to the coordinator
(registration, heartbeats) pass through the tap; the measured path, coordinator to agent and
back, does not.
"""

from __future__ import annotations

import json
import sys

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["build_app"]

_HOP = {"host", "content-length", "connection", "transfer-encoding"}


def build_app(upstream: str) -> Starlette:
    keys: dict[str, str] = {}
    client = httpx.AsyncClient(base_url=upstream, timeout=30)

    async def key(request: Request) -> JSONResponse:
        node = request.query_params.get("node", "")
        return JSONResponse({"key": keys.get(node)})

    async def forward(request: Request) -> Response:
        body = await request.body()
        if request.method == "POST" and request.url.path == "/api/v1/nodes":
            try:
                document = json.loads(body)
                if document.get("dispatch_key"):
                    keys[str(document.get("id"))] = str(document["dispatch_key"])
            except ValueError:
                pass
        answer = await client.request(
            request.method,
            request.url.path,
            params=request.query_params,
            content=body,
            headers={k: v for k, v in request.headers.items() if k.lower() not in _HOP},
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        headers.pop("content-encoding", None)
        return Response(answer.content, status_code=answer.status_code, headers=headers)

    methods = ["GET", "POST", "PUT", "DELETE"]
    return Starlette(
        routes=[
            Route("/__tap/key", key),
            Route("/{path:path}", forward, methods=methods),
        ]
    )


if __name__ == "__main__":
    uvicorn.run(
        build_app(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
    )
