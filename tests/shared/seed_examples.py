"""Pull every JSON example out of the two seed documents in docs/seeds/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SEEDS = Path(__file__).resolve().parents[2] / "docs" / "seeds"
REMOTE_SYNC = SEEDS / "000-remote-sync.md"
COORDINATION = SEEDS / "003-coordination.md"

_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
_CURL_BODY = re.compile(r"-d '(\{.*?\})'", re.S)


def _loads(text: str) -> Any:
    # The seeds elide content as [...] and {...}; read those as empty.
    text = text.replace("[...]", "[]").replace("{...}", "{}")
    return json.loads(text)


def json_examples(path: Path) -> list[Any]:
    """Every JSON document in the file, in order of appearance.

    Sources: ```json blocks; the body after the headers in ```http blocks; JSON on the right of
    an arrow in plain blocks (the seed's event flows); and ``curl -d '...'`` bodies.
    """
    found: list[tuple[int, Any]] = []
    text = path.read_text(encoding="utf-8")
    for match in _FENCE.finditer(text):
        lang, body = match.group(1), match.group(2)
        start = match.start()
        if lang == "json":
            found.append((start, _loads(body)))
        elif lang == "http":
            _headers, _, payload = body.partition("\n\n")
            if payload.strip():
                found.append((start, _loads(payload)))
        elif lang == "bash":
            for curl in _CURL_BODY.finditer(body):
                found.append((start + curl.start(), _loads(curl.group(1))))
        elif lang == "":
            for line in body.splitlines():
                brace = line.find("{")
                if brace != -1 and ":" in line[:brace]:
                    found.append((start, _loads(line[brace:])))
    return [doc for _, doc in sorted(found, key=lambda item: item[0])]
