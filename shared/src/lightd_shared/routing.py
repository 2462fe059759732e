"""Routes that check the caller before they read the body.

FastAPI reads and parses a route's JSON body before it runs the route's dependencies, so a
caller without a token who sends malformed JSON got a 422 (what is wrong with the body) where a
401 belongs. :class:`GuardFirstRoute` runs the route's *guards* (dependencies marked with
:func:`guard`: the token and proof checks) first, on the headers alone, and reads the body only
for a caller they let through. Every router of the agent and the coordinator is built with it.

:func:`method_not_allowed` answers a 405 with an ``Allow`` header that lists every method of the
path: the router's own lists only the methods of the first route that matched the path (``GET``
for ``POST /containers``'s path, say).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import solve_dependencies
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, _effective_route_context_var, _IncludedRouter
from starlette.routing import BaseRoute

__all__ = ["GuardFirstRoute", "allowed_methods", "guard", "method_not_allowed"]

_GUARD = "__lightd_guard__"
F = TypeVar("F", bound=Callable[..., Any])


def guard(function: F) -> F:
    """Mark a dependency as an auth check that :class:`GuardFirstRoute` runs before the body."""
    setattr(function, _GUARD, True)
    return function


class GuardFirstRoute(APIRoute):
    """An ``APIRoute`` whose guards answer (401, 403) before its body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        # an included route is built per inclusion (prefix, the router's dependencies), as
        # APIRoute.get_route_handler itself reads it
        route: Any = self
        context = _effective_route_context_var.get()
        if context is not None and context.original_route is self:
            route = context
        guards = [d for d in route.dependant.dependencies if getattr(d.call, _GUARD, False)]
        if route.body_field is None or not guards:
            return handler
        gate = Dependant(dependencies=guards, path=route.path_format)
        overrides = route.dependency_overrides_provider

        async def guarded(request: Request) -> Response:
            async with AsyncExitStack() as stack:
                # raises the guard's HTTPException; parameter errors are left to the handler
                await solve_dependencies(
                    request=request,
                    dependant=gate,
                    body=None,
                    dependency_overrides_provider=overrides,
                    async_exit_stack=stack,
                    embed_body_fields=False,
                )
            return await handler(request)

        return guarded


def _routes(routes: list[BaseRoute]) -> Iterator[Any]:
    for route in routes:
        if isinstance(route, _IncludedRouter):
            yield from route.effective_route_contexts()
        else:
            yield route


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route of ``app`` answers on ``path``."""
    methods: set[str] = set()
    for route in _routes(app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """The 405 handler: ``Allow`` lists every method the path answers."""
    allow = ", ".join(allowed_methods(request.app, request.scope["path"]))
    return JSONResponse(
        {"detail": f"method {request.method} is not allowed here; use {allow}"},
        status_code=405,
        headers={"Allow": allow},
    )
