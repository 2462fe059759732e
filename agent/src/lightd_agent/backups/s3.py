"""The ``s3`` target: archives in an S3-compatible bucket, uploaded as they are written.

The archive writer runs in a thread and writes into a pipe; boto3's ``upload_fileobj`` reads
the other end and sends multipart parts of ``backups.s3.part_size`` bytes as they fill, so a
backup never needs local disk for the archive (only a few parts in memory). When the writer
fails, the reader raises at the end of the pipe instead of reporting a clean end, so a cut-off
archive is never completed as an object; when the upload fails, the writer's next write fails
(the pipe is closed) and the multipart upload is aborted by boto3.

Credentials come from ``backups.s3`` when set, else from the standard AWS sources boto3 reads
(environment, shared files, instance role). Tested against moto's standalone server.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lightd_agent.backups.target import Produce, Target, TargetError
from lightd_agent.config import S3TargetSection

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Target"]


class _PipeReader(io.RawIOBase):
    """The read end of the writer's pipe; at its end, the writer's failure is raised."""

    def __init__(self, fd: int, failure: list[BaseException]) -> None:
        self._fd = fd
        self._failure = failure

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        size = n if n is not None and n >= 0 else 1024 * 1024
        chunks: list[bytes] = []
        while size > 0:  # fill the asked size: boto3 takes a short read for the end
            data = os.read(self._fd, min(size, 1024 * 1024))
            if not data:
                if self._failure:
                    raise OSError(f"the archive writer failed: {self._failure[0]}")
                break
            chunks.append(data)
            size -= len(data)
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _explain(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', str(exc))}"
    return str(exc)


class S3Target(Target):
    kind = "s3"

    def __init__(self, section: S3TargetSection) -> None:
        if not section.bucket:
            raise ValueError("backups.s3.bucket is not set")
        self.section = section
        self.bucket = section.bucket
        session = boto3.session.Session(
            aws_access_key_id=section.access_key_id,
            aws_secret_access_key=section.secret_access_key,
            region_name=section.region,
        )
        self.client: S3Client = session.client(
            "s3",
            endpoint_url=section.endpoint_url,
            config=Config(
                connect_timeout=10, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
            ),
        )
        self.transfer = TransferConfig(
            multipart_threshold=section.part_size,
            multipart_chunksize=section.part_size,
            max_concurrency=2,
        )

    def _key(self, key: str) -> str:
        return f"{self.section.prefix}{key}"

    def store(self, key: str, produce: Produce) -> None:
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def write() -> None:
            sink = open(write_fd, "wb", buffering=1024 * 1024)
            try:
                produce(sink)
                sink.flush()
            except BaseException as exc:
                failure.append(exc)  # before the close: the reader sees it at the pipe's end
            finally:
                with contextlib.suppress(OSError):
                    sink.close()

        writer = threading.Thread(target=write, name=f"backup-writer-{key}", daemon=True)
        writer.start()
        reader = _PipeReader(read_fd, failure)
        uploaded: Exception | None = None
        try:
            self.client.upload_fileobj(
                cast(BinaryIO, reader), self.bucket, self._key(key), Config=self.transfer
            )
        except Exception as exc:
            uploaded = exc
        finally:
            os.close(read_fd)  # a writer still writing gets EPIPE and stops
            writer.join()
        if failure and not isinstance(failure[0], BrokenPipeError):
            # the writer failed first (the upload then failed on the reader's error)
            with contextlib.suppress(Exception):
                self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
            raise failure[0]
        if uploaded is not None:
            raise TargetError(
                f"uploading to {self.describe()} failed: {_explain(uploaded)}"
            ) from uploaded
        if failure:
            raise failure[0]

    def open(self, key: str) -> BinaryIO:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise TargetError(
                f"reading {self._key(key)} from {self.describe()} failed: {_explain(exc)}"
            ) from exc
        return answer["Body"]  # type: ignore[return-value]  # a StreamingBody reads like one

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise TargetError(
                f"deleting {self._key(key)} from {self.describe()} failed: {_explain(exc)}"
            ) from exc

    def describe(self) -> str:
        where = self.section.endpoint_url or "AWS"
        return f"s3 bucket {self.bucket} at {where}"
