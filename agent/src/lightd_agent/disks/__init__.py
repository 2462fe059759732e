"""Enforced disk quotas (``limits.disk``): a fixed-size ext4 image per server on a loop device.

Where a server's life meets its image (start, create, install, boot, delete, resize) is
:mod:`lightd_agent.servers.quota`; this package is the images themselves and their routes.

- ``base.py``: the seam (:class:`DiskImages`), its :class:`DiskError` and what it reports
- ``loop.py``: the implementation on the system's tools (``mkfs.ext4``, ``mount -o loop``, ...)
- ``routes.py``: ``GET /volumes/{id}/quota``, ``POST /volumes/{id}/resize``
- ``commands.py``: the coordinator's ``quota.get`` / ``quota.resize`` container commands
"""

from lightd_agent.disks.base import DiskError, DiskImages, Probe, Usage
from lightd_agent.disks.loop import LoopExt4

__all__ = ["DiskError", "DiskImages", "LoopExt4", "Probe", "Usage"]
