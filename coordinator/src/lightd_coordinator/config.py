"""The coordinator's configuration: the seed's YAML sections, defaults and environment overrides.

Sources, strongest first:

1. the seed's variables ``VENDETTA_COORD_HOST``, ``VENDETTA_COORD_PORT``, ``VENDETTA_JWT_SECRET``;
2. ``LIGHTD_COORD_<SECTION>__<FIELD>`` for every field
   (``LIGHTD_COORD_REGISTRY__NODE_TIMEOUT=90s``);
3. the YAML file (``config.yaml``);
4. the defaults below, which are the seed's.

Unknown keys are refused (a typo should not silently fall back to a default). Every problem is
raised as one :class:`ConfigError` whose message names the file, the key and what is wrong.

Over 400 lines on purpose: it is one idea, the coordinator's whole configuration tree (one
settings section per class, field by field), which docs/coordinator.md mirrors.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from lightd_coordinator.origins import check_origin_pattern
from lightd_coordinator.tls import TlsSettings
from lightd_shared.durations import Duration, PositiveDuration, format_duration
from lightd_shared.ratelimit import RateLimitSettings
from lightd_shared.tokens import TOKEN_PATTERN
from lightd_shared.types import Port

__all__ = [
    "SAMPLE_AUTH_TOKEN",
    "SAMPLE_JWT_SECRET",
    "ActivitySettings",
    "AuthSettings",
    "ConfigError",
    "LoggingSettings",
    "RegistrySettings",
    "ServerSettings",
    "Settings",
    "WebsocketSettings",
    "default_yaml",
    "load_settings",
]

SAMPLE_AUTH_TOKEN = "vendetta-coordination-token"
SAMPLE_JWT_SECRET = "vendetta-jwt-secret-key-minimum-16-chars"
ENV_PREFIX = "LIGHTD_COORD_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: Port = 3001
    auth_token: str = Field(default=SAMPLE_AUTH_TOKEN, min_length=1, repr=False)
    read_timeout: Duration = timedelta(seconds=30)
    write_timeout: Duration = timedelta(seconds=30)
    idle_timeout: Duration = timedelta(seconds=120)
    max_body_size: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted, in bytes"
    )
    dev: bool = Field(
        default=False,
        description="A development run: allows auth with the seed's sample secrets",
    )
    tls: TlsSettings = Field(default_factory=TlsSettings, description="HTTPS and mutual TLS")
    rate_limit: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="429 for clients failing auth often"
    )


class RegistrySettings(_Section):
    provider: Literal["memory", "sqlite", "redis"] = "memory"
    sync_interval: Duration = timedelta(seconds=30)
    health_check_interval: Duration = timedelta(seconds=10)
    node_timeout: Duration = timedelta(seconds=60)
    max_retries: int = Field(default=3, ge=0, le=20)
    path: str = Field(default="lightd-coordinator.db", min_length=1)
    command_timeout: Duration = timedelta(seconds=30)
    result_ttl: Duration = timedelta(hours=1)
    max_output: int = Field(default=65536, ge=256)
    heartbeat_interval: Duration = Field(
        default=timedelta(seconds=10),
        description="How often agents heartbeat in a small fleet (the agents' own default); "
        "the base of the stretch rule",
    )
    max_heartbeat_rate: float = Field(
        default=500.0,
        gt=0,
        description="Heartbeats per second the whole fleet may send: above "
        "max_heartbeat_rate * heartbeat_interval nodes, each heartbeat answer tells the agent "
        "to wait longer and node_timeout stretches by the same factor",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        repr=False,
        description="provider redis: the Redis server every replica shares (may hold a password)",
    )
    redis_prefix: str = Field(
        default="lightd:",
        pattern=r"^[A-Za-z0-9:_.-]{1,64}$",
        description="provider redis: the start of every key (several fleets on one Redis)",
    )

    # The resource history (GET .../stats/history): per server, the agents' stats samples of
    # the last stats_retention, bounded whatever a node sends.
    stats_retention: Duration = timedelta(hours=1)
    stats_max_samples: int = Field(
        default=1800, ge=1, le=100_000, description="Samples kept per server at most"
    )
    stats_min_interval: Duration = Field(
        default=timedelta(seconds=2),
        description="A sample closer than this to the server's previous one is dropped",
    )
    stats_max_servers: int = Field(
        default=256, ge=1, le=10_000, description="Servers with a history per node at most"
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator(
        "health_check_interval",
        "node_timeout",
        "command_timeout",
        "result_ttl",
        "heartbeat_interval",
        "stats_retention",
    )
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


class WebsocketSettings(_Section):
    enabled: bool = True
    path: str = Field(default="/ws", pattern=r"^/[A-Za-z0-9/_.-]*$")
    origins: list[str] = Field(default_factory=lambda: ["*"])
    ping_period: Duration = timedelta(seconds=30)
    history_size: int = Field(default=1000, ge=1, le=1_000_000)
    queue_size: int = Field(default=256, ge=1, le=100_000)

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [check_origin_pattern(entry) for entry in value]

    @field_validator("ping_period")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


class AuthSettings(_Section):
    enabled: bool = False
    jwt_secret: str = Field(default=SAMPLE_JWT_SECRET, min_length=16, repr=False)
    token_expiry: Duration = timedelta(hours=24)
    dispatch_token_expiry: Duration = timedelta(seconds=60)
    agent_token: str | None = Field(
        default=None,
        pattern=TOKEN_PATTERN,
        repr=False,
        description=(
            "lightd_<hex>: agents present it as Bearer on register/heartbeat and on "
            "/api/v1/remote/{node_id}/*"
        ),
    )


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["json", "text"] = "json"
    output: str = Field(default="stdout", min_length=1)
    max_size: int = Field(default=100, ge=1, description="MiB per log file before rotating")
    max_backups: int = Field(default=3, ge=0)
    max_age: int = Field(default=28, ge=0, description="days to keep rotated files (0: forever)")

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class ActivitySettings(_Section):
    """The activity log (``GET /api/v1/activity``), kept in the registry's store."""

    enabled: bool = True
    retention: PositiveDuration = Field(
        default=timedelta(days=7), description="How long an entry is kept"
    )
    max_entries: int = Field(
        default=10_000, ge=10, le=10_000_000, description="Entries kept at most (the newest)"
    )
    record_reads: bool = Field(
        default=True,
        description="Record read-only container commands too (list, status, logs, file reads, "
        "quota.get, backup.list|get, schedules.list); false keeps a busy dashboard's reads out",
    )


_yaml_path: ContextVar[Path | None] = ContextVar("lightd_coordinator_yaml", default=None)


class _SeedEnvironment(PydanticBaseSettingsSource):
    """The seed's three variables, mapped into their sections."""

    _MAP: ClassVar[dict[str, tuple[str, str]]] = {
        "VENDETTA_COORD_HOST": ("server", "host"),
        "VENDETTA_COORD_PORT": ("server", "port"),
        "VENDETTA_JWT_SECRET": ("auth", "jwt_secret"),
    }

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for variable, (section, key) in self._MAP.items():
            value = os.environ.get(variable)
            if value is not None and value != "":
                found.setdefault(section, {})[key] = value
        return found


class Settings(BaseSettings):
    """The whole configuration file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    websocket: WebsocketSettings = Field(default_factory=WebsocketSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    activity: ActivitySettings = Field(default_factory=ActivitySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _SeedEnvironment(settings_cls),
            env_settings,
        ]
        path = _yaml_path.get()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    def sample_secrets_in_use(self) -> list[str]:
        """Which of the seed's published sample secrets this configuration still uses."""
        found = []
        if self.auth.jwt_secret == SAMPLE_JWT_SECRET:
            found.append("auth.jwt_secret")
        if self.server.auth_token == SAMPLE_AUTH_TOKEN:
            found.append("server.auth_token")
        return found

    def check_startable(self, *, dev: bool = False) -> None:
        """Refuse to serve with auth on and a published sample secret, unless it is a dev run."""
        if not self.auth.enabled or dev or self.server.dev:
            return
        samples = self.sample_secrets_in_use()
        if samples:
            raise ConfigError(
                f"auth.enabled is true but {' and '.join(samples)} still hold the seed's sample "
                "value, which anyone can read; set your own secret (for example with "
                "VENDETTA_JWT_SECRET and LIGHTD_COORD_SERVER__AUTH_TOKEN), or pass --dev "
                "(server.dev: true) for a development run"
            )


def _describe(error: ValidationError, origin: str) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")  # pydantic's, not ours
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and section)"
        lines.append(f"{where}: {message}")
    return f"invalid configuration in {origin}: " + "; ".join(lines)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own message spans several)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read ``path`` (YAML) plus the environment; ``None`` means defaults plus the environment."""
    file_path = Path(path) if path is not None else None
    origin = (
        f"{file_path} (or the environment overriding it)"
        if file_path is not None
        else "the environment"
    )
    if file_path is not None:
        if not file_path.is_file():
            raise ConfigError(f"config file {file_path} does not exist or is not a file")
        try:
            document = yaml.safe_load(file_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file_path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"config file {file_path} is not valid YAML: {_yaml_problem(exc)}"
            ) from None
        if document is not None and not isinstance(document, dict):
            raise ConfigError(
                f"config file {file_path} must hold a mapping of sections "
                "(server, registry, websocket, auth, logging)"
            )
        for section, body in (document or {}).items():
            if body is not None and not isinstance(body, dict):
                raise ConfigError(
                    f"invalid configuration in {file_path}: {section} must be a mapping"
                )
    token = _yaml_path.set(file_path)
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    except (ValueError, TypeError) as exc:
        # pydantic-settings reports unparsable environment values (e.g. JSON lists) this way
        raise ConfigError(f"invalid configuration in {origin}: {exc}") from None
    finally:
        _yaml_path.reset(token)


def _seed_duration(value: timedelta) -> str:
    """Durations as the seed writes them: whole hours as ``24h``, other seconds as ``120s``."""
    seconds = value.total_seconds()
    if seconds == int(seconds):
        if seconds >= 3600 and seconds % 3600 == 0:
            return f"{int(seconds) // 3600}h"
        return f"{int(seconds)}s"
    return format_duration(value)


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return _seed_duration(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


_HEADER = """\
# lightd-coordinator configuration (the seed's sections and defaults, plus lightd's additions).
# Durations are written like "30s", "100ms", "2h30m15s".
# Environment overrides: VENDETTA_COORD_HOST, VENDETTA_COORD_PORT, VENDETTA_JWT_SECRET, and
# LIGHTD_COORD_<SECTION>__<FIELD> for every field (e.g. LIGHTD_COORD_REGISTRY__PROVIDER=sqlite).
# See docs/coordinator.md for every field.
"""


def default_yaml(settings: Settings | None = None) -> str:
    """A complete ``config.yaml``: every section and field, with its current (default) value."""
    if settings is None:
        token = _yaml_path.set(None)
        try:
            settings = Settings.model_construct(
                server=ServerSettings(),
                registry=RegistrySettings(),
                websocket=WebsocketSettings(),
                auth=AuthSettings(),
                logging=LoggingSettings(),
                activity=ActivitySettings(),
            )
        finally:
            _yaml_path.reset(token)
    document = _plain(settings.model_dump())
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return _HEADER + "\n" + body
