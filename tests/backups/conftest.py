"""Fixtures for the backup tests: real agents on the real engine, moto's real S3 server.

moto's standalone server (``moto_server``, from the dev group) runs as a process on a free
loopback port; it not starting is a failure, never a skip. No real S3 is reachable here, so the
S3 target is tested against moto only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest

from tests.agent.conftest import agent, anyio_backend, make_agent
from tests.harness.servers import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Moto", "agent", "anyio_backend", "make_agent", "moto"]

MOTO_KEY = "testing"
MOTO_SECRET = "testing-secret"


@dataclass
class Moto:
    url: str
    bucket: str

    def client(self) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=MOTO_KEY,
            aws_secret_access_key=MOTO_SECRET,
            region_name="us-east-1",
        )

    def section(self, **extra: object) -> dict[str, object]:
        return {
            "target": "s3",
            "s3": {
                "bucket": self.bucket,
                "prefix": "test/",
                "endpoint_url": self.url,
                "region": "us-east-1",
                "access_key_id": MOTO_KEY,
                "secret_access_key": MOTO_SECRET,
                **extra,
            },
        }


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[Moto]:
    binary = Path(sys.executable).parent / "moto_server"
    assert binary.exists(), f"{binary} is missing: install the dev group (moto[server])"
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (
                "moto_server exited:\n" + (tmp_path / "moto.log").read_text()
            )
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError("moto_server did not start within 30 s") from None
                time.sleep(0.1)
        moto = Moto(url=url, bucket=f"lightd-test-{uuid.uuid4().hex[:8]}")
        moto.client().create_bucket(Bucket=moto.bucket)
        yield moto
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
