"""Authentication bodies: the coordinator's ``POST /api/v1/auth/token`` answer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lightd_shared.base import Payload

__all__ = ["TokenResponse"]


class TokenResponse(Payload):
    """``{"access_token": JWT, "token_type": "bearer", "expires_in": SECONDS}``."""

    access_token: str = Field(min_length=1)
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(ge=0)
