"""What a container may do on this host: refusals that keep an agent token from meaning root.

Each refusal names the spec option and the ``config.json`` switch that would allow it, so an
operator knows both what to change in the request and what the host owner would have to enable.

Some sources are refused whatever the policy says, because no switch should hand them out:

- a bind mount of the agent's own state directory (``storage.state_dir``: server specs, the
  remote outbox, and ``dispatch.key``, the key the coordinator signs commands with), of
  ``storage.volumes_dir`` (every server's own files), of anything inside them, or of a
  directory that contains them (``storage.base_path`` itself, ``/``). Paths are compared after
  resolving symlinks and ``..``, so a link under ``base_path`` cannot point back at them.
- a bind source with a symlink anywhere below ``storage.base_path``: a server that can write
  a directory could turn part of another server's source into a link after this check (Docker
  follows it at the next start). The check also runs again before every start.
- a named volume whose name starts with :data:`~lightd_agent.docker_backend.VOLUME_PREFIX`:
  those are servers' own volumes (``lightd-<node>-<server>-data``), each mounted only into its
  server at ``/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from lightd_agent.config import PolicySection, StorageSection
from lightd_agent.docker_backend import VOLUME_PREFIX
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


def _link_below(source: str, base: Path) -> str | None:
    """The first symlink in ``source``'s path below ``base`` (written as configured), if any."""
    path = Path(os.path.normpath(source))
    root = Path(os.path.normpath(base))
    if root not in path.parents:
        return None
    for part in [*reversed(path.parents), path]:
        if root in part.parents and part.is_symlink():
            return str(part)
    return None


def _protected(source: str, storage: StorageSection) -> str | None:
    """Why the bind source ``source`` may never be mounted, or ``None`` if it may."""
    link = _link_below(source, storage.base_path)
    if link is not None:
        return (
            f"{link!r} under storage.base_path is a symlink, which a server could point at "
            "the agent's own files; mount the real directory"
        )
    for directory, what in (
        (storage.state_dir, "the agent's own state directory (server specs and dispatch.key)"),
        (storage.volumes_dir, "the directory of every server's own volume"),
        (storage.disks_dir, "the directory of every server's disk image"),
    ):
        if _inside(Path(source), directory):
            return f"it is inside {what} {str(directory)!r}"
        if _inside(directory, Path(source)):
            return f"it contains {what} {str(directory)!r}"
    return None


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
        if not source.startswith("/"):
            if source.startswith(VOLUME_PREFIX):
                raise PolicyRefused(
                    f"volume {source!r} is never allowed: names starting with "
                    f"{VOLUME_PREFIX!r} are servers' own volumes, each mounted only into its "
                    "server at /data; use another volume name"
                )
            continue
        reason = _protected(source, storage)
        if reason is not None:
            raise PolicyRefused(
                f"bind mount {source!r} is never allowed ({reason}); no policy switch allows "
                "it: mount a directory of its own under storage.base_path instead"
            )
        if not policy.allow_bind_outside_storage and not _inside(Path(source), storage.base_path):
            raise _refuse(
                f"bind mount {source!r}",
                "allow_bind_outside_storage",
                f"bind mounts must live under storage.base_path {str(storage.base_path)!r}",
            )
