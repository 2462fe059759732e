"""A server's files: safe access to its volume root (``storage.volumes_dir / <server id>``).

One idea per module::

    walker.py   paths split and walked by directory handles (O_NOFOLLOW), the refusals
    writer.py   AtomicFile: a temporary file beside the target, then rename or link
    volume.py   Volume: list, read, write, mkdir, copy, rename, delete, chmod, search
    archive.py  compress (tar.gz, zip) and decompress (zip-slip, links, bombs refused)
    service.py  FileService: which volume (404), threads bounded by files.workers
    commands.py the ``files.*`` container commands from the coordinator

The routes are in :mod:`lightd_agent.api.routes.files`.
"""

from lightd_agent.files.service import Download, FileService, Upload
from lightd_agent.files.volume import Volume

__all__ = ["Download", "FileService", "Upload", "Volume"]
