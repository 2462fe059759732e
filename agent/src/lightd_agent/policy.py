"""What a container may do on this host: refusals that keep an agent token from meaning root.

Each refusal names the spec option and the ``config.json`` switch that would allow it, so an
operator knows both what to change in the request and what the host owner would have to enable.
"""

from __future__ import annotations

from pathlib import Path

from lightd_agent.config import PolicySection, StorageSection
from lightd_agent.errors import PolicyRefused
from lightd_shared.containers import ContainerSpec, parse_volume

__all__ = ["check_spec"]


def _refuse(option: str, switch: str, why: str) -> PolicyRefused:
    return PolicyRefused(
        f"{option} is not allowed by this agent's policy ({why}); remove it from the request, "
        f"or set policy.{switch} to true in config.json to allow it"
    )


def _inside(path: Path, base: Path) -> bool:
    resolved = Path(path).resolve()
    root = Path(base).resolve()
    return resolved == root or root in resolved.parents


def check_spec(spec: ContainerSpec, policy: PolicySection, storage: StorageSection) -> None:
    """Raise :class:`PolicyRefused` for the first forbidden option of ``spec``."""
    if spec.privileged and not policy.allow_privileged:
        raise _refuse(
            "privileged", "allow_privileged", "a privileged container is root on the host"
        )
    if spec.network_mode == "host" and not policy.allow_host_network:
        raise _refuse(
            "network_mode 'host'", "allow_host_network", "it shares the host's network stack"
        )
    if spec.pid_mode == "host" and not policy.allow_host_pid:
        raise _refuse("pid_mode 'host'", "allow_host_pid", "it sees and signals host processes")
    if spec.cap_add and not policy.allow_cap_add:
        raise _refuse(
            f"cap_add {spec.cap_add}", "allow_cap_add", "added capabilities widen what root can do"
        )
    for entry in spec.volumes:
        source, _target, _ro = parse_volume(entry)
        if source.startswith("/") and not policy.allow_bind_outside_storage:
            if not _inside(Path(source), storage.base_path):
                raise _refuse(
                    f"bind mount {source!r}",
                    "allow_bind_outside_storage",
                    f"bind mounts must live under storage.base_path {str(storage.base_path)!r}",
                )
