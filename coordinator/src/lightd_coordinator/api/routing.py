"""Routes that check the caller before they read the body.

FastAPI reads and parses a route's JSON body before it runs the route's dependencies, so a
caller without a token who sends malformed JSON got a 422 (what is wrong with the body) where a
401 belongs. :class:`GuardFirstRoute` runs the route's *guards* (dependencies marked with
:func:`guard`: the token and proof checks) first, on the headers alone, and reads the body only
for a caller they let through. Every router of this program is built with it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import solve_dependencies
from fastapi.routing import APIRoute, _effective_route_context_var

__all__ = ["GuardFirstRoute", "guard"]

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
