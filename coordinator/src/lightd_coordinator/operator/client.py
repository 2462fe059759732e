"""The operator's HTTP client: typed answers, refusals said plainly, and the ``/ws`` stream.

Every answer is read into its shared model (:mod:`lightd_shared`); the API's JSON is kept beside
it for ``--json``. A refusal says what was refused and why: a missing token (``401`` without
one), a wrong token (``401`` with one: the coordinator's reason and where the token came from),
a token that does not open the route (``403``), and a body the API refused (``422``: each field
at fault).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from lightd_shared.commands import describe_command_errors
from lightd_shared.events import Event

__all__ = [
    "TOKEN_ENV",
    "Answer",
    "Api",
    "EventStream",
    "OperatorError",
    "StreamItem",
    "describe_detail",
    "refusal",
]

TOKEN_ENV = "LIGHTD_COORD_TOKEN"

M = TypeVar("M", bound=BaseModel)


class OperatorError(Exception):
    """A verb cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class Answer(Generic[M]):
    """One answer of the API: read into its model, and as sent (``--json`` prints that)."""

    model: M
    raw: Any


@dataclass(frozen=True)
class StreamItem:
    """One message of ``/ws``: an event with its id, or ``None`` for a keep-alive ping."""

    id: int | None
    event: Event | None


def _reason(detail: str) -> str:
    """The coordinator's 401 detail without its frame (``unauthorized: X; send ...``)."""
    reason = detail.removeprefix("unauthorized: ")
    return reason.split("; send 'Authorization", 1)[0]


def describe_detail(response: httpx.Response) -> str:
    """An error answer's ``detail`` in one line; a validation error names each field."""
    try:
        detail: Any = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text.strip() or response.reason_phrase
    if isinstance(detail, list):
        errors = [
            {**item, "loc": [p for p in item.get("loc", ()) if p != "body"]}
            if isinstance(item, dict)
            else {"loc": [], "msg": str(item)}
            for item in detail
        ]
        return describe_command_errors(errors)  # names each field (a command's union tag left out)
    return detail if isinstance(detail, str) else json.dumps(detail)


def refusal(
    method: str, path: str, response: httpx.Response, *, token: str | None, token_source: str
) -> OperatorError:
    """What an error answer means: no token, a refused one (and why), a refused body."""
    detail = describe_detail(response)
    if response.status_code == 401:
        if not token:
            return OperatorError(
                f"the coordinator wants a token ({_reason(detail)}): pass --token or set "
                f"${TOKEN_ENV}"
            )
        return OperatorError(
            f"the coordinator refused the token from {token_source}: {_reason(detail)}. Use "
            "the coordinator's server.auth_token or a JWT from `lightd-coordinator token`; for "
            "the local cluster, `lightd-coordinator token show` prints its operator token"
        )
    if response.status_code == 403:
        return OperatorError(
            f"the coordinator refused the token from {token_source} for {method} {path}: {detail}"
        )
    return OperatorError(f"{method} {path}: HTTP {response.status_code}: {detail}")


class Api:
    """The coordinator at ``url``, called with ``token`` (which came from ``token_source``)."""

    def __init__(self, url: str, token: str | None, *, token_source: str = "--token") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.token = token
        self.token_source = token_source
        self.client = httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def _unreachable(self, exc: httpx.HTTPError) -> OperatorError:
        return OperatorError(
            f"cannot reach the coordinator at {self.url}: {type(exc).__name__} ({exc}); "
            "is it running? (--url)"
        )

    def refusal(self, method: str, path: str, response: httpx.Response) -> OperatorError:
        """What a 4xx/5xx answer means for the person at the keyboard."""
        return refusal(method, path, response, token=self.token, token_source=self.token_source)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call; a transport error or an error answer raises :class:`OperatorError`."""
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise self.refusal(method, path, response)
        return response

    def fetch(self, model: type[M], method: str, path: str, **kwargs: Any) -> Answer[M]:
        """One call whose answer is read into ``model``."""
        response = self.request(method, path, **kwargs)
        try:
            return Answer(model.model_validate_json(response.content), response.json())
        except (ValidationError, ValueError) as exc:
            raise OperatorError(
                f"{method} {path}: the answer is not a {model.__name__} ({exc}); "
                "is this a lightd coordinator of a matching version?"
            ) from None

    @contextmanager
    def events(
        self,
        *,
        types: str | None = None,
        node: str | None = None,
        last_event_id: int | None = None,
    ) -> Iterator[EventStream]:
        """``/ws`` opened (its headers read): iterate it for :class:`StreamItem` s."""
        params = {k: v for k, v in {"types": types, "node": node}.items() if v}
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        try:
            with self.client.stream(
                "GET", "/ws", params=params, headers=headers, timeout=httpx.Timeout(10, read=None)
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise self.refusal("GET", "/ws", response)
                yield EventStream(response, self.url)
        except httpx.HTTPError as exc:
            raise OperatorError(
                f"the event stream from {self.url} broke: {type(exc).__name__}"
            ) from None


class EventStream:
    """The messages of one ``/ws`` response, parsed from its SSE lines."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self.response = response
        self.url = url
        self.last_id: int | None = None

    def raw(self) -> Iterator[tuple[int | None, str | None]]:
        """``(id, data)`` per message, ``(None, None)`` per keep-alive comment."""
        event_id: int | None = None
        data: list[str] = []
        for line in self.response.iter_lines():
            if line.startswith(":"):
                yield None, None
            elif line.startswith("id:"):
                text = line[3:].strip()
                event_id = int(text) if text.isdigit() else None
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                if event_id is not None:
                    self.last_id = event_id
                yield event_id, "\n".join(data)
                event_id, data = None, []

    def __iter__(self) -> Iterator[StreamItem]:
        for event_id, data in self.raw():
            if data is None:
                yield StreamItem(None, None)
                continue
            try:
                event = Event.model_validate_json(data)
            except ValidationError:
                continue  # not an envelope: a newer coordinator's; ignore it
            yield StreamItem(event_id, event)
