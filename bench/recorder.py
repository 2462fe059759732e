"""A recording remote-sync server (seed 000) for figures 2 and 6, run as its own process.

``python -m bench.recorder PORT`` serves ``/health``, ``/update`` and ``/config`` like a seed
remote, and stamps every ``/update`` with ``time.time_ns()`` as it arrives (the same clock as
Docker's ``timeNano``, on the same machine). ``GET /__records?since=N`` hands the records to the
benchmark, with ``started_ns``, when this process began serving. It runs in its own process so
that the benchmark's own work cannot delay it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["build_app"]


def build_app() -> Starlette:
    records: list[dict[str, Any]] = []
    started: dict[str, int] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Just before uvicorn binds the port: from here on the remote is (about to be) up.
        started["ns"] = time.time_ns()
        yield

    async def update(request: Request) -> JSONResponse:
        arrived = time.time_ns()
        body = await request.json()
        records.append(
            {
                "t_ns": arrived,
                "server": body.get("server"),
                "status": body.get("status"),
                "error": body.get("error"),
                "key": request.headers.get("idempotency-key"),
                "sequence": request.headers.get("x-lightd-sequence"),
            }
        )
        return JSONResponse({"success": True})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": 200, "endpoint": "active"})

    async def config(request: Request) -> JSONResponse:
        return JSONResponse({"containers": [], "settings": {}})

    async def listing(request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", "0"))
        return JSONResponse(
            {"records": records[since:], "count": len(records), "started_ns": started.get("ns")}
        )

    return Starlette(
        routes=[
            Route("/update", update, methods=["POST"]),
            Route("/health", health),
            Route("/config", config, methods=["GET", "POST"]),
            Route("/__records", listing),
        ],
        lifespan=lifespan,
    )


if __name__ == "__main__":
    uvicorn.run(
        build_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False
    )
