"""The enforced disk quota (``limits.disk``) on the real engine and real loop-mounted ext4.

A busybox server with ``limits.disk: 20m`` writes from inside its container: past the limit
``dd`` fails with ENOSPC, and ``GET /volumes/{id}/quota`` reports what it wrote. Tolerance for
``used``: ext4's ``statvfs`` leaves its own journal and inode tables out of ``f_blocks``, so
what is used is the files' data plus their extent and directory blocks: a few KiB for the
handful of files here; the tests allow 1 MiB.

Every mount and loop device a test makes is released after it, even when it fails
(:func:`tests.harness.disks.release_disks`).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from lightd_agent.disks.loop import LoopExt4, loop_devices, mount_source
from tests.agent.conftest import SERVE, Agent, AgentFactory, remove_node
from tests.harness.disks import loop_images, release_disks, require_loop

pytestmark = pytest.mark.docker

MIB = 1024 * 1024
TOLERANCE = MIB


@pytest.fixture
def disk_agent(
    make_agent: AgentFactory, tmp_path: Path, docker_client: docker.DockerClient
) -> Iterator[Callable[..., Agent]]:
    """``make_agent``, with every mount and loop device below the test's directory released."""
    require_loop()
    started: list[Agent] = []

    def start(**sections: dict[str, Any]) -> Agent:
        agent = make_agent(**sections)
        started.append(agent)
        return agent

    try:
        yield start
    finally:
        for agent in started:  # the containers first: they hold the filesystems too
            remove_node(docker_client, agent.node)
        release_disks(tmp_path)


def _exec(agent: Agent, server: str, command: str) -> dict[str, Any]:
    response = agent.client.post(
        f"/containers/{server}/exec", json={"command": command, "timeout": "60s"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _quota(agent: Agent, server: str) -> dict[str, Any]:
    response = agent.client.get(f"/volumes/{server}/quota")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _root(agent: Agent, server: str) -> Path:
    return agent.config.storage.volumes_dir / server


def _image(agent: Agent, server: str) -> Path:
    return agent.config.storage.disks_dir / f"{server}.img"


def _online(agent: Agent) -> bool:
    return bool(agent.app.state.agent.manager.quotas.probed.online_grow)


def test_a_write_past_the_limit_fails_with_enospc_and_the_quota_reports_it(
    disk_agent: Callable[..., Agent], test_image: str
) -> None:
    agent = disk_agent()
    state = agent.install("q1", test_image, startup_command=SERVE, limits={"disk": "20m"})
    assert state["state"] == "running", state
    root = _root(agent, "q1")
    device = mount_source(root)
    assert device is not None and device in loop_devices(_image(agent, "q1"))
    assert _image(agent, "q1").stat().st_size == 20 * MIB

    empty = _quota(agent, "q1")
    assert empty["limit_mb"] == 20 and empty["enforced"] is True
    # the filesystem holds the image less ext4's journal and tables
    assert 15 * MIB < empty["size_bytes"] <= 20 * MIB
    assert empty["used_bytes"] < TOLERANCE

    wrote = _exec(agent, "q1", "dd if=/dev/zero of=/data/ten bs=1M count=10 && sync")
    assert wrote["status"] == "success", wrote
    ten = _quota(agent, "q1")
    assert abs(ten["used_bytes"] - 10 * MIB) < TOLERANCE, ten
    assert ten["used_mb"] == 10 and ten["size_mb"] == ten["size_bytes"] // MIB
    assert abs(ten["available_bytes"] - (ten["size_bytes"] - ten["used_bytes"])) < TOLERANCE
    share = 100 * ten["used_bytes"] / ten["size_bytes"]
    assert ten["percentage_used"] == pytest.approx(share, abs=0.01)

    past = _exec(agent, "q1", "dd if=/dev/zero of=/data/more bs=1M count=40")
    assert past["status"] == "failed"
    assert "No space left on device" in past["output"], past
    full = _quota(agent, "q1")
    assert full["available_bytes"] < TOLERANCE and full["percentage_used"] > 95

    # the agent's own writes under the volume root hit the same limit
    with pytest.raises(OSError) as refused:
        (root / "from-the-host").write_bytes(b"x" * (2 * MIB))
    assert refused.value.errno == errno.ENOSPC
    # and so do the file routes, as a 4xx naming it
    body = {"filename": "/note.txt", "content": "x" * (512 * 1024)}
    wrote_file = agent.client.post("/volumes/q1/write", json=body)
    assert wrote_file.status_code == 413, wrote_file.text
    assert "no space left on the volume" in wrote_file.json()["detail"]


def test_resize_grows_refuses_a_shrink_that_does_not_fit_and_keeps_the_data(
    disk_agent: Callable[..., Agent], test_image: str
) -> None:
    agent = disk_agent()
    agent.install("q2", test_image, startup_command=SERVE, limits={"disk": "20m"})
    assert _exec(agent, "q2", "dd if=/dev/urandom of=/data/a bs=1M count=12")["status"] == "success"
    digest = _exec(agent, "q2", "md5sum /data/a")["output"].split()[0]
    assert _exec(agent, "q2", "dd if=/dev/zero of=/data/b bs=1M count=12")["status"] == "failed"

    running = agent.client.post("/volumes/q2/resize", json={"size": 40})
    if _online(agent):
        assert running.status_code == 200, running.text
    else:  # this host's kernel grows a mounted ext4 only with CAP_SYS_RESOURCE
        assert running.status_code == 409, running.text
        assert "CAP_SYS_RESOURCE" in running.json()["detail"]
        assert _image(agent, "q2").stat().st_size == 20 * MIB  # nothing changed
        assert agent.client.post("/containers/q2/stop").status_code == 200
        grown = agent.client.post("/volumes/q2/resize", json={"size": 40})
        assert grown.status_code == 200, grown.text
        assert agent.client.post("/containers/q2/start").status_code == 200
    assert _quota(agent, "q2")["limit_mb"] == 40
    assert _image(agent, "q2").stat().st_size == 40 * MIB
    spec = agent.client.get("/containers/q2").json()["spec"]
    assert spec["limits"]["disk"] == "40m"  # kept for a reinstall and the next start
    more = _exec(agent, "q2", "dd if=/dev/zero of=/data/b bs=1M count=12 && sync")
    assert more["status"] == "success", more

    shrink_running = agent.client.post("/volumes/q2/resize", json={"size": 30})
    assert shrink_running.status_code == 409
    assert "stopped" in shrink_running.json()["detail"]
    assert agent.client.post("/containers/q2/stop").status_code == 200
    too_small = agent.client.post("/volumes/q2/resize", json={"size": 16})
    assert too_small.status_code == 409, too_small.text
    assert "more than the new size" in too_small.json()["detail"]
    assert _image(agent, "q2").stat().st_size == 40 * MIB
    assert mount_source(_root(agent, "q2")) is not None  # mounted again as it was

    (_root(agent, "q2") / "b").unlink()
    shrunk = agent.client.post("/volumes/q2/resize", json={"size": 24})
    assert shrunk.status_code == 200, shrunk.text
    assert shrunk.json()["limit_mb"] == 24
    assert _image(agent, "q2").stat().st_size == 24 * MIB
    assert agent.client.post("/containers/q2/start").status_code == 200
    assert _exec(agent, "q2", "md5sum /data/a")["output"].split()[0] == digest


def test_bad_sizes_are_refused_with_the_field_named(
    disk_agent: Callable[..., Agent], test_image: str
) -> None:
    agent = disk_agent()
    for disk, words in (
        ("4m", "below the minimum of 8m"),
        ("lots", "invalid disk limit"),
        ("17t", "above the maximum of 16t"),
        (True, "valid integer"),
    ):
        body = agent.spec("bad", test_image, limits={"disk": disk})
        response = agent.client.post("/containers", json=body)
        assert response.status_code == 422, response.text
        assert "limits.disk" in response.json()["detail"] and words in response.text
    assert agent.client.get("/containers/bad").status_code == 404
    agent.install("q3", test_image, startup_command=SERVE, limits={"disk": 16 * MIB})
    for size in (2, 0, "40", 17 * 1024 * 1024 + 1):
        response = agent.client.post("/volumes/q3/resize", json={"size": size})
        assert response.status_code == 422, response.text
        assert "size" in response.json()["detail"]
    assert agent.client.post("/volumes/nope/resize", json={"size": 20}).status_code == 404
    assert agent.client.get("/volumes/nope/quota").status_code == 404
    bare = agent.client.get("/volumes/q3/quota", headers={"Authorization": "Bearer wrong"})
    assert bare.status_code == 401


def test_a_server_without_limits_disk_is_as_before(
    disk_agent: Callable[..., Agent], test_image: str
) -> None:
    agent = disk_agent()
    agent.install("plain", test_image, startup_command=SERVE)
    assert mount_source(_root(agent, "plain")) is None
    assert not _image(agent, "plain").exists()
    quota = agent.client.get("/volumes/plain/quota")
    assert quota.status_code == 409 and "no disk limit" in quota.json()["detail"]
    resize = agent.client.post("/volumes/plain/resize", json={"size": 64})
    assert resize.status_code == 409 and "no disk limit" in resize.json()["detail"]
    wrote = _exec(agent, "plain", "echo hi > /data/hello && cat /data/hello")
    assert wrote["status"] == "success" and wrote["output"].strip() == "hi"
    assert (_root(agent, "plain") / "hello").read_text() == "hi\n"
    deleted = agent.client.delete("/containers/plain", params={"volumes": "true"})
    assert deleted.status_code == 200
    assert not _root(agent, "plain").exists()


def test_reinstall_keeps_the_data_and_delete_releases_the_image(
    disk_agent: Callable[..., Agent], test_image: str
) -> None:
    agent = disk_agent()
    agent.install("q4", test_image, startup_command=SERVE, limits={"disk": "12m"})
    assert _exec(agent, "q4", "echo kept > /data/file")["status"] == "success"
    assert agent.client.post("/containers/q4/reinstall").status_code == 202
    agent.wait_kinds("q4", ["Started", "CreatingContainer", "Ready", "Running", "ReinstallStarted"])
    agent.wait_state("q4", "running")
    assert _exec(agent, "q4", "cat /data/file")["output"].strip() == "kept"

    # deleted keeping the volume: unmounted, the image (the data) kept
    assert agent.client.delete("/containers/q4").status_code == 200
    assert mount_source(_root(agent, "q4")) is None
    assert _image(agent, "q4").is_file()
    # the same id again with limits.disk: the kept image is mounted, data and all
    agent.install("q4", test_image, startup_command=SERVE, limits={"disk": "12m"})
    assert _exec(agent, "q4", "cat /data/file")["output"].strip() == "kept"

    gone = agent.client.delete("/containers/q4", params={"volumes": "true"})
    assert gone.status_code == 200, gone.text
    assert not _image(agent, "q4").exists() and not _root(agent, "q4").exists()
    assert not loop_images(agent.config.storage.base_path)


def test_an_agent_that_cannot_enforce_it_refuses_the_create(
    disk_agent: Callable[..., Agent], test_image: str, tmp_path: Path
) -> None:
    agent = disk_agent(disks={"enabled": False})
    body = agent.spec("nodisk", test_image, startup_command=SERVE, limits={"disk": "20m"})
    refused = agent.client.post("/containers", json=body)
    assert refused.status_code == 409, refused.text
    assert "disks.enabled is false" in refused.json()["detail"]
    assert agent.client.get("/containers/nodisk").status_code == 404
    assert not agent.config.storage.disks_dir.exists()
    assert agent.install("fine", test_image, startup_command=SERVE)["state"] == "running"

    # the probe names what is missing on a host without the tools
    probe = LoopExt4(tmp_path / "d", tmp_path / "v", timeout=10, search_path=str(tmp_path)).probe()
    assert probe.problem is not None and "is not installed" in probe.problem
    # and where they work, the probe's own image is gone again
    works = LoopExt4(tmp_path / "d", tmp_path / "v", timeout=10).probe()
    assert works.problem is None, works
    assert list((tmp_path / "d").iterdir()) == [] and list((tmp_path / "v").iterdir()) == []


def test_the_disks_directory_is_never_a_bind_source(
    disk_agent: Callable[..., Agent], test_image: str
) -> None:
    agent = disk_agent()
    disks = agent.config.storage.disks_dir
    for source in (str(disks), str(disks / "other.img")):
        body = agent.spec("binder", test_image, volumes=[f"{source}:/steal"])
        response = agent.client.post("/containers", json=body)
        assert response.status_code == 403, response.text
        assert "disk image" in response.json()["detail"]


def _corrupt(image: Path) -> None:
    """Zero the primary superblock (and the first backups): e2fsck -p cannot repair that."""
    with image.open("r+b") as disk:
        disk.seek(1024)
        disk.write(b"\0" * 1024)
    out = subprocess.run(["e2fsck", "-n", str(image)], capture_output=True, check=False)
    assert out.returncode != 0


def test_a_start_never_uses_the_bare_directory(
    disk_agent: Callable[..., Agent], test_image: str
) -> None:
    agent = disk_agent()
    agent.install("q5", test_image, startup_command=SERVE, limits={"disk": "12m"})
    assert agent.client.post("/containers/q5/stop").status_code == 200
    root = _root(agent, "q5")
    subprocess.run(["umount", str(root)], check=True)
    started = agent.client.post("/containers/q5/start")
    assert started.status_code == 409, started.text
    assert "not started on the bare directory" in started.json()["detail"]
    assert agent.status("q5")["state"] == "stopped"
    assert os.listdir(root) == []
