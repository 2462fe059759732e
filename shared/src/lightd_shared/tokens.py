"""Tokens of the form ``lightd_<hex>`` (the remote-sync seed's form), and comparing secrets."""

from __future__ import annotations

import hmac
import re
import secrets

__all__ = ["TOKEN_PATTERN", "generate_token", "mask_token", "tokens_equal"]

TOKEN_PATTERN = r"^lightd_[0-9a-f]{16,128}$"
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def generate_token() -> str:
    """A fresh ``lightd_`` token with 128 bits of randomness (32 hex digits, as in the seed)."""
    return "lightd_" + secrets.token_hex(16)


def is_token(value: str) -> bool:
    """Whether ``value`` has the ``lightd_<hex>`` form."""
    return bool(_TOKEN_RE.fullmatch(value))


def tokens_equal(given: str | None, expected: str) -> bool:
    """Compare a presented secret with the expected one in constant time."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def mask_token(value: str | None) -> str | None:
    """Show enough of a token to recognise it, never enough to use it: ``lightd_ad2f…``."""
    if value is None:
        return None
    if value.startswith("lightd_"):
        return value[:11] + "…"
    return value[:4] + "…" if len(value) > 8 else "…"
