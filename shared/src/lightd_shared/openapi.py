"""Every status code a program really answers, written into its OpenAPI document.

FastAPI documents what a route declares (its success code and, for routes with parameters, a
422); the answers that come from auth, the body limit, a missing resource or a refused action
are left out. :func:`document_errors` adds them, by rules both programs share:

======  ============================================================================
401     every operation but the public ones (``/health``): no or a wrong token
400     operations with a body: a body that is not JSON text (invalid UTF-8, too deep)
413     operations with a body: a body over ``server.max_body_size``
422     operations with a body or parameters: a value the validation refused
404     operations with a path parameter: nothing by that id
======  ============================================================================

plus the codes each program names per operation (``extra``). Every error body is
``{"detail": ...}`` (:data:`PROBLEM`); a program may give 422 a schema of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PROBLEM", "PROBLEM_NAME", "document_errors"]

PROBLEM_NAME = "Problem"
PROBLEM: dict[str, Any] = {
    "title": PROBLEM_NAME,
    "type": "object",
    "description": "An error answer: `detail` says what went wrong and what to do",
    "properties": {"detail": {"title": "Detail"}},
    "required": ["detail"],
}

DESCRIPTIONS = {
    400: "The body could not be read as JSON",
    401: "No token, or a wrong one",
    403: "The token does not open this operation (or the node's proof is missing)",
    404: "Nothing by that id",
    408: "The request did not arrive within server.read_timeout",
    409: "Conflicts with the current state",
    413: "The body is larger than server.max_body_size",
    422: "A value the validation refused",
    502: "A peer this call depends on answered badly",
    503: "Not available right now; the detail says why",
    504: "A call this depends on took too long",
}

_METHODS = ("get", "put", "post", "delete", "patch")


def _response(code: int, schema_ref: str) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(code, "Error"),
        "content": {"application/json": {"schema": {"$ref": schema_ref}}},
    }


def document_errors(
    document: dict[str, Any],
    *,
    public: Iterable[str] = ("/health",),
    protected: Iterable[int] = (401,),
    with_body: Iterable[int] = (400, 413, 422),
    extra: Mapping[str, Iterable[int]] | None = None,
    validation_schema: dict[str, Any] | None = None,
    validation_name: str = "HTTPValidationError",
) -> dict[str, Any]:
    """Add the error answers to every operation of ``document`` (changed in place, returned).

    ``extra`` maps ``"METHOD /path"`` or a path prefix ``"/containers"`` (every operation
    under it) to more codes. ``validation_schema`` replaces the 422 schema (``validation_name``
    in ``components.schemas``).
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(PROBLEM_NAME, PROBLEM)
    if validation_schema is not None:
        schemas[validation_name] = validation_schema
    problem = f"#/components/schemas/{PROBLEM_NAME}"
    invalid = f"#/components/schemas/{validation_name}"
    public = set(public)
    rules = {key: set(codes) for key, codes in (extra or {}).items()}
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            codes: set[int] = set()
            if path not in public:
                codes.update(protected)
            if "requestBody" in operation:
                codes.update(with_body)
            if operation.get("parameters"):
                codes.add(422)
            if "{" in path:
                codes.add(404)
            for key, more in rules.items():
                if key == f"{method.upper()} {path}" or (
                    key.startswith("/") and (path == key or path.startswith(key + "/"))
                ):
                    codes.update(more)
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                if code == 422:
                    responses[str(code)] = _response(code, invalid)
                else:
                    answer = responses.setdefault(str(code), _response(code, problem))
                    answer.setdefault("content", _response(code, problem)["content"])
    return document
