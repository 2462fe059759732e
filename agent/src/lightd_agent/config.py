"""The agent's ``config.json``: sections, defaults, environment overrides, one clear error.

Sources, lowest to highest precedence:

1. the defaults below;
2. the JSON file (``lightd run -c PATH``; else ``./config.json``; else
   ``/etc/lightd/config.json``);
3. environment variables ``LIGHTD_<SECTION>__<FIELD>`` (read by pydantic-settings), e.g.
   ``LIGHTD_SERVER__PORT=9000`` or ``LIGHTD_REMOTE__ENABLED=true``. pydantic-settings is
   imported only when the environment has a ``LIGHTD_*`` variable: without one it reads
   nothing, and it costs an agent about 3.5 MiB of resident memory.

Values are validated once, by :func:`load_config`; any problem raises :class:`ConfigError` whose
message names the file and every field at fault, so ``lightd run`` can print it and exit
non-zero instead of starting half-configured. :func:`load_config` is also how a running agent
re-reads its file (``POST /remote/config/reload``).

Over 400 lines on purpose: it is one idea, the agent's whole configuration tree (one
settings section per class, each documented field by field); splitting it would scatter the
reference that docs/agent.md mirrors.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lightd_agent.tls import TlsSection
from lightd_shared.durations import Duration, PositiveDuration, parse_duration
from lightd_shared.nodes import Address
from lightd_shared.ratelimit import RateLimitSettings
from lightd_shared.remote import RemoteSettings, RemoteToken, url_userinfo
from lightd_shared.tokens import generate_token
from lightd_shared.types import Identifier, Labels, Port

__all__ = [
    "DEFAULT_PATHS",
    "AgentConfig",
    "AuthorizationSection",
    "BackupsSection",
    "CommandsSection",
    "ConfigError",
    "CoordinatorSection",
    "DisksSection",
    "DockerSection",
    "FilesSection",
    "LoggingSection",
    "NamedRemoteSettings",
    "NodeSection",
    "PolicySection",
    "S3TargetSection",
    "ServerSection",
    "StorageSection",
    "TlsSection",
    "default_config_document",
    "find_config_path",
    "load_config",
]

DEFAULT_PATHS: tuple[Path, ...] = (Path("config.json"), Path("/etc/lightd/config.json"))
ENV_PREFIX = "LIGHTD_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which file and field, and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSection(_Section):
    host: str = Field(default="0.0.0.0", min_length=1, description="Address the API listens on")
    port: Port = Field(default=8070, description="Port the API listens on")
    max_body_size: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted, in bytes"
    )
    shutdown_grace: Duration = Field(
        default=parse_duration("30s"),
        description="On SIGTERM, how long running installs and power actions may finish "
        "before they are cancelled (new requests get 503 meanwhile)",
    )
    tls: TlsSection = Field(default_factory=TlsSection, description="HTTPS and mutual TLS")
    rate_limit: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="429 for clients failing auth often"
    )


class AuthorizationSection(_Section):
    """The agent API's bearer token.

    "Enabled needs a token" is checked on ``token`` itself (``validate_default``), not in a
    model validator: the error then names ``authorization.token`` and is reported together with
    every other field's error, even when the section is missing from the file altogether.
    """

    enabled: bool = Field(default=True, description="Require the bearer token on the API")
    token: str | None = Field(
        default=None,
        min_length=16,
        validate_default=True,
        description="Bearer token protecting this agent's API",
    )

    @field_validator("token")
    @classmethod
    def _enabled_needs_token(cls, token: str | None, info: ValidationInfo) -> str | None:
        if not token and info.data.get("enabled", True):
            raise ValueError(
                "authorization is enabled but token is not set; generate one with "
                "`lightd token reset` or `lightd config`"
            )
        return token


class DockerSection(_Section):
    socket_path: str = Field(default="/var/run/docker.sock", min_length=1)
    call_timeout: PositiveDuration = Field(
        default=parse_duration("30s"),
        description="A Docker call taking longer fails with a clear error instead of wedging",
    )
    install_timeout: PositiveDuration = Field(
        default=parse_duration("15m"), description="Longest an install script may run"
    )
    reconnect_interval: PositiveDuration = Field(
        default=parse_duration("2s"), description="How often an unreachable engine is retried"
    )
    scope: str = Field(
        default="",
        pattern=r"^([a-z0-9][a-z0-9_-]{0,62})?$",
        description=(
            "Keeps agents with the same node id on one engine apart (two compose clusters): "
            "a lightd.scope label on, and a part of the name of, all the agent creates"
        ),
    )


class StorageSection(_Section):
    base_path: Path = Field(
        default=Path("/var/lib/lightd"),
        description="Bind-mount sources must live under it; the agent's state dir is in it",
    )

    @property
    def state_dir(self) -> Path:
        return self.base_path / "state"

    @property
    def volumes_dir(self) -> Path:
        """Where each server's own volume keeps its files: ``volumes/<server id>``."""
        return self.base_path / "volumes"

    @property
    def disks_dir(self) -> Path:
        """Where the disk image of each server with ``limits.disk`` lives: ``disks/<id>.img``."""
        return self.base_path / "disks"


class NodeSection(_Section):
    id: Identifier = Field(default_factory=lambda: _hostname())
    name: str = ""
    labels: Labels = Field(default_factory=dict)


class PolicySection(_Section):
    """What containers may do. Everything off: an agent token must not mean root on the host."""

    allow_privileged: bool = False
    allow_host_network: bool = False
    allow_host_pid: bool = False
    allow_cap_add: bool = False
    allow_bind_outside_storage: bool = False


class LoggingSection(_Section):
    level: str = Field(default="info", pattern=r"^(?i)(debug|info|warning|error|critical)$")
    json_format: bool = Field(default=False, alias="json", description="One JSON object a line")

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class CoordinatorSection(_Section):
    """Enrolment with a lightd coordinator: register on start, heartbeat, take commands.

    ``token`` is the coordinator's ``auth.agent_token``; it is sent as a Bearer token on
    registration and heartbeats. The coordinator reaches this agent back at
    ``advertise_address:advertise_port`` (``POST /commands``). ``enabled`` left out means "a
    ``url`` is set": a config with ``coordinator{url, token}`` joins; ``enabled: false`` keeps
    such a config from joining.

    ``urls`` lists more replicas of one coordinator (``registry.provider: redis``): the agent
    uses ``url`` and then ``urls`` in order, staying with the first that answers and moving
    to the next when it stops answering (as Nomad clients do with their ``servers`` list).
    """

    enabled: bool = False
    url: HttpUrl | None = Field(default=None, description="e.g. http://coordinator:3001")
    urls: list[HttpUrl] = Field(
        default_factory=list,
        description="More coordinator replicas to fail over to, tried in order after url",
    )
    token: RemoteToken | None = Field(
        default=None,
        repr=False,
        description="The coordinator's agent enrolment token (lightd_<hex>)",
    )
    advertise_address: Address | None = Field(
        default=None, description="Address the coordinator reaches us at (host name or IP)"
    )
    advertise_port: Port | None = Field(default=None, description="Default: server.port")
    services_address: Address | None = Field(
        default=None,
        description=(
            "Address where the servers' published ports are reachable (the Docker host), used in"
            " service endpoints. Default: advertise_address. Set it when the agent itself runs in"
            " a container, whose name is not where Docker publishes ports."
        ),
    )
    heartbeat_interval: PositiveDuration = Field(default=parse_duration("10s"))
    stats_interval: PositiveDuration = Field(
        default=parse_duration("10s"),
        description="How often the running servers' stats samples go to the coordinator",
    )

    @model_validator(mode="before")
    @classmethod
    def _enabled_when_a_url_is_given(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "enabled" not in data
            and (data.get("url") or data.get("urls"))
        ):
            return {**data, "enabled": True}
        return data

    @field_validator("urls", mode="before")
    @classmethod
    def _urls_from_text(cls, value: Any) -> Any:
        """From the environment: a JSON list, or urls separated by commas."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _enabled_needs_url(self) -> Self:
        if self.enabled and not self.bases():
            raise ValueError("coordinator is enabled but url is not set")
        return self

    def bases(self) -> list[str]:
        """Every coordinator replica's base url, ``url`` first, each once, without a final ``/``."""
        found: list[str] = []
        for url in [self.url, *self.urls]:
            if url is not None and str(url).rstrip("/") not in found:
                found.append(str(url).rstrip("/"))
        return found

    def endpoint(self, path: str, base: str | None = None) -> str:
        """``{base}/{path}``; ``base`` defaults to the first of :meth:`bases`."""
        bases = self.bases()
        if base is None and not bases:
            raise ValueError("coordinator url is not set")
        return (base or bases[0]).rstrip("/") + "/" + path.lstrip("/")


class CommandsSection(_Section):
    """What the coordinator's commands may do on this host."""

    allow_exec: bool = Field(
        default=False,
        description="Run type 'exec' commands as host shell commands (off: refused as failed)",
    )
    max_output: int = Field(
        default=65536, ge=256, description="Bytes of command output kept (the rest is cut)"
    )


class S3TargetSection(_Section):
    """The S3-compatible bucket backups go to with ``backups.target: "s3"``.

    Credentials left unset come from the standard AWS sources (``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, an instance role), as boto3 finds them.
    """

    bucket: str | None = Field(
        default=None, min_length=3, max_length=63, description="The bucket (required for s3)"
    )
    prefix: str = Field(
        default="lightd/", max_length=512, description="Key prefix: <prefix><server>/<id>.tar.gz"
    )
    endpoint_url: str | None = Field(
        default=None, description="An S3-compatible endpoint (MinIO, Ceph, ...); AWS when unset"
    )
    region: str | None = Field(default=None, description="The bucket's region")
    access_key_id: str | None = Field(default=None, description="Else from the environment")
    secret_access_key: str | None = Field(default=None, description="Else from the environment")
    part_size: int = Field(
        default=64 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="Multipart upload part size in bytes (S3's minimum is 5 MiB)",
    )


class BackupsSection(_Section):
    """Backups of each server's volume (``/containers/{id}/backups``)."""

    target: Literal["local", "s3"] = Field(
        default="local", description="Where archives go: 'local' (local_dir) or 's3'"
    )
    local_dir: Path | None = Field(
        default=None, description="Archives of the local target (default <base_path>/backups)"
    )
    retention: int = Field(
        default=0,
        ge=0,
        description="Completed backups kept per server; older ones are deleted after a new "
        "one completes (0: keep all)",
    )
    ignore: list[str] = Field(
        default_factory=list, description="gitignore-style patterns left out of every backup"
    )
    progress_interval: PositiveDuration = Field(
        default=parse_duration("1s"),
        description="At most one backup_progress/restore_progress event this often",
    )
    stop_timeout: PositiveDuration = Field(
        default=parse_duration("30s"),
        description="How long a running server may take to stop before a restore",
    )
    s3: S3TargetSection = Field(default_factory=S3TargetSection)

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> Self:
        if self.target == "s3" and not self.s3.bucket:
            raise ValueError("backups.target is s3 but backups.s3.bucket is not set")
        return self


class DisksSection(_Section):
    """Enforced disk quotas (``limits.disk``): a loop-mounted ext4 image per server."""

    enabled: bool = Field(
        default=True,
        description="Enforce limits.disk (off: a create with limits.disk is refused with 409)",
    )
    tool_timeout: PositiveDuration = Field(
        default=parse_duration("10m"),
        description="Longest one mkfs.ext4, e2fsck, resize2fs or mount may take",
    )


class ConsoleSection(_Section):
    """The live console (log follows) and the install logs kept per server."""

    backlog: int = Field(
        default=150, ge=0, description="Lines of past output a follow starts with (?tail=N)"
    )
    max_backlog: int = Field(
        default=10_000, ge=0, le=100_000, description="The most ?tail=N a follow may ask for"
    )
    throttle_lines: int = Field(
        default=2000, ge=1, description="Lines a server's follows may pass per throttle_period"
    )
    throttle_period: PositiveDuration = Field(
        default=parse_duration("100ms"), description="The throttle's window"
    )
    max_line: int = Field(
        default=65536, ge=1024, description="Bytes of one line kept (the rest is cut, marked)"
    )
    install_log_size: int = Field(
        default=1024 * 1024, ge=4096, description="Bytes kept of each install log (the tail)"
    )


class FilesSection(_Section):
    """Bounds of the file routes (``/volumes/{id}/...``, see lightd_agent.files)."""

    max_upload: int = Field(
        default=1024**3, ge=1, description="Largest streamed upload (PUT .../upload) in bytes"
    )
    max_read_inline: int = Field(
        default=256 * 1024, ge=1, description="Largest file a files.read command returns whole"
    )
    max_entries: int = Field(
        default=100_000, ge=1, description="Most entries a listed directory may hold (else 413)"
    )
    max_search_visits: int = Field(
        default=200_000, ge=1, description="Most entries one search looks at"
    )
    archive_max_size: int = Field(
        default=4 * 1024**3, ge=1, description="Most bytes one decompress or compress writes"
    )
    archive_max_ratio: int = Field(
        default=100, ge=1, description="Most bytes written per byte of archive (past 1 MiB)"
    )
    archive_max_entries: int = Field(
        default=100_000, ge=1, description="Most members one archive may hold"
    )
    workers: int = Field(
        default=4, ge=1, le=64, description="File operations running at once (threads)"
    )


class NamedRemoteSettings(RemoteSettings):
    """One entry of ``remotes``: a remote block plus a name (which also names its outbox)."""

    name: Identifier


class AgentConfig(_Section):
    """The whole ``config.json``."""

    server: ServerSection = Field(default_factory=ServerSection)
    # Validated from {} rather than built by a factory: a missing section then reports
    # authorization.token among the other errors instead of aborting validation.
    authorization: AuthorizationSection = Field(default_factory=dict, validate_default=True)
    docker: DockerSection = Field(default_factory=DockerSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    remote: RemoteSettings = Field(default_factory=RemoteSettings)
    node: NodeSection = Field(default_factory=NodeSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    coordinator: CoordinatorSection = Field(default_factory=CoordinatorSection)
    commands: CommandsSection = Field(default_factory=CommandsSection)
    console: ConsoleSection = Field(default_factory=ConsoleSection)
    remotes: list[NamedRemoteSettings] = Field(
        default_factory=list, description="Further remotes, each with its own outbox"
    )
    backups: BackupsSection = Field(default_factory=BackupsSection)
    disks: DisksSection = Field(default_factory=DisksSection)
    files: FilesSection = Field(default_factory=FilesSection)

    @model_validator(mode="after")
    def _remote_names_unique(self) -> Self:
        names = [remote.name for remote in self.remotes]
        dupes = sorted({name for name in names if names.count(name) > 1})
        if dupes:
            raise ValueError(f"remotes: names must be unique; repeated: {', '.join(dupes)}")
        return self

    def secrets(self) -> list[str]:
        """Every secret in this config, for the log filter that masks them."""
        tokens = [self.authorization.token, self.coordinator.token, self.remote.token]
        tokens += [remote.token for remote in self.remotes]
        tokens.append(self.backups.s3.secret_access_key)
        # A user:password in a URL is a secret too (code masks it; the filter is the backstop).
        urls = [
            self.coordinator.url,
            *self.coordinator.urls,
            self.remote.url,
            *(remote.url for remote in self.remotes),
        ]
        userinfos = (url_userinfo(url) for url in urls if url is not None)
        tokens += [f"{userinfo}@" for userinfo in userinfos if userinfo]
        return [token for token in tokens if token]


def _hostname() -> str:
    name = socket.gethostname().split(".")[0] or "lightd"
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)
    return cleaned if cleaned[:1].isalnum() else "lightd-" + cleaned


@functools.cache
def _env_overrides_model() -> type[BaseModel]:
    """The settings class reading ``LIGHTD_*``; built (and pydantic-settings imported) once,
    on first use."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class _EnvOverrides(BaseSettings):
        """Reads ``LIGHTD_<SECTION>__<FIELD>`` into per-section dicts (validated afterwards)."""

        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", case_sensitive=False
        )

        server: dict[str, Any] | None = None
        authorization: dict[str, Any] | None = None
        docker: dict[str, Any] | None = None
        storage: dict[str, Any] | None = None
        remote: dict[str, Any] | None = None
        node: dict[str, Any] | None = None
        policy: dict[str, Any] | None = None
        logging: dict[str, Any] | None = None
        coordinator: dict[str, Any] | None = None
        commands: dict[str, Any] | None = None
        console: dict[str, Any] | None = None
        remotes: list[Any] | None = None
        backups: dict[str, Any] | None = None
        files: dict[str, Any] | None = None

    return _EnvOverrides


def _env_overrides() -> dict[str, Any]:
    """The ``LIGHTD_*`` overrides, by section; none (and no pydantic-settings) without such
    a variable, matched case-insensitively as pydantic-settings matches them."""
    if not any(name.upper().startswith(ENV_PREFIX) for name in os.environ):
        return {}
    overrides: dict[str, Any] = _env_overrides_model()().model_dump(exclude_none=True)
    return overrides


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def find_config_path(explicit: str | Path | None = None) -> Path:
    """The file to read: ``explicit`` if given (it must exist), else the first default found."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file; create one with `lightd config`")
        return path
    for candidate in DEFAULT_PATHS:
        if candidate.is_file():
            return candidate
    tried = " or ".join(str(p) for p in DEFAULT_PATHS)
    raise ConfigError(
        f"no config file at {tried}; create one with `lightd config > config.json` or pass -c PATH"
    )


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a JSON object with sections")
    return data


def _describe(exc: ValidationError, path: Path, env: dict[str, Any]) -> str:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
        section = str(error["loc"][0]) if error["loc"] else ""
        origin = ""
        if section in env and len(error["loc"]) > 1:
            field = str(error["loc"][1])
            if field in env[section]:
                origin = f" (from {ENV_PREFIX}{section.upper()}__{field.upper()})"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {loc}{origin}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_config(path: str | Path | None = None) -> AgentConfig:
    """Read, merge with ``LIGHTD_*`` overrides and validate; raise :class:`ConfigError`."""
    file_path = find_config_path(path)
    data = _read_file(file_path)
    try:
        env = _env_overrides()
    except ValidationError as exc:  # a LIGHTD_<SECTION> value that is not a JSON object
        raise ConfigError(_describe(exc, Path("environment"), {})) from exc
    merged = _merge(data, env)
    try:
        # strict=False: environment values are strings ("9000", "true") by nature.
        return AgentConfig.model_validate(merged, strict=False)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, file_path, env)) from exc


def default_config_document(token: str | None = None) -> dict[str, Any]:
    """A complete default ``config.json`` with a freshly generated ``lightd_<hex>`` token."""
    config = AgentConfig(
        authorization=AuthorizationSection(token=token or generate_token()),
    )
    document: dict[str, Any] = config.model_dump(mode="json", by_alias=True)
    return document
