"""``/volumes/{id}/...`` on a real agent with a real server container (the busybox image).

The hostile inputs are built for real, some by the server's own container (a symlink to a host
directory, a device node made with ``mknod``), and each refusal is checked against the host
file it aimed at. The race test has the container swap a directory for a symlink to the host
in a tight loop while the agent writes, reads and lists through it: nothing outside is touched.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.agent.conftest import SERVE, TOKEN, Agent

pytestmark = pytest.mark.docker

SECRET = b"the host's own file\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory beside the agent's storage, with one file nobody may touch."""
    directory = tmp_path / "host-outside"
    directory.mkdir()
    (directory / "secret.txt").write_bytes(SECRET)
    (directory / "secret.txt").chmod(0o600)
    return directory


def untouched(outside: Path) -> None:
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == SECRET
    assert (outside / "secret.txt").stat().st_mode & 0o777 == 0o600


def server(agent: Agent, image: str, name: str = "files-1", command: str = SERVE) -> Path:
    state = agent.install(name, image, startup_command=command)
    assert state["state"] == "running", state
    return agent.config.storage.volumes_dir / name


def exec_in(agent: Agent, name: str, command: str) -> None:
    answer = agent.client.post(f"/containers/{name}/exec", json={"command": command})
    assert answer.status_code == 200 and answer.json()["exit_code"] == 0, answer.text


def test_routes_do_the_work_and_answer_4xx(agent: Agent, test_image: str) -> None:
    root = server(agent, test_image)
    c = agent.client
    v = "/volumes/files-1"
    assert httpx.get(f"{agent.url}{v}/files").status_code == 401
    assert c.get("/volumes/nope/files").status_code == 404
    done = c.post(f"{v}/write", json={"filename": "/cfg/server.properties", "content": "a=1\n"})
    assert done.status_code == 200 and done.json() == {
        "success": True,
        "path": "/cfg/server.properties",
        "size": 4,
    }
    assert (root / "cfg/server.properties").read_text() == "a=1\n"
    assert c.get(f"{v}/files", params={"path": "/cfg"}).json() == {
        "files": ["server.properties"],
        "hidden": 0,
    }
    page = c.get(f"{v}/files/detailed", params={"path": "/", "limit": 1}).json()
    assert page["files"][0]["name"] == "cfg" and page["files"][0]["is_dir"] is True
    assert page["total"] == 1 and page["next_offset"] is None
    read = c.get(f"{v}/read", params={"path": "cfg/server.properties"})
    assert read.status_code == 200 and read.content == b"a=1\n"
    assert c.post(f"{v}/create-folder", json={"root": "/", "name": "plugins"}).status_code == 200
    assert c.post(f"{v}/create-folder", json={"root": "/", "name": "plugins"}).status_code == 409
    copy = c.post(f"{v}/copy", json={"source": "/cfg", "destination": "/cfg2", "is_folder": True})
    assert copy.status_code == 200, copy.text
    moved = c.post(f"{v}/rename", json={"from": "/cfg2", "to": "/plugins/cfg"})
    assert moved.json()["path"] == "/plugins/cfg"
    assert c.post(f"{v}/chmod", json={"path": "/plugins", "mode": "750"}).status_code == 200
    assert (root / "plugins").stat().st_mode & 0o777 == 0o750
    bad_mode = c.post(f"{v}/chmod", json={"path": "/plugins", "mode": "4755"})
    assert bad_mode.status_code == 422
    packed = c.post(
        f"{v}/compress", json={"sources": ["/cfg", "/plugins"], "output": "/b.zip", "format": "zip"}
    )
    assert packed.status_code == 200, packed.text
    c.post(f"{v}/delete", json={"root": "/", "files": ["cfg", "plugins"]}).raise_for_status()
    assert sorted(os.listdir(root)) == ["b.zip"]
    assert c.post(f"{v}/decompress", json={"root": "/", "file": "b.zip"}).status_code == 200
    assert (root / "plugins/cfg/server.properties").read_text() == "a=1\n"
    found = c.get(f"{v}/search", params={"pattern": "*.properties"}).json()
    assert sorted(e["path"] for e in found["files"]) == [
        "/cfg/server.properties",
        "/plugins/cfg/server.properties",
    ]
    # bad input: 4xx with a message, never a 500
    for method, path, kwargs, code in [
        ("GET", f"{v}/read", {"params": {"path": "/nope"}}, 404),
        ("GET", f"{v}/read", {"params": {"path": "/cfg"}}, 422),
        ("GET", f"{v}/files", {"params": {"path": "/../../etc"}}, 422),
        ("GET", f"{v}/files", {"params": {"path": "/b.zip"}}, 422),
        ("POST", f"{v}/write", {"json": {"filename": "/x\u0000y", "content": ""}}, 422),
        ("POST", f"{v}/delete", {"json": {"root": "/", "files": ["/"]}}, 422),
        ("POST", f"{v}/rename", {"json": {"from": "/cfg", "to": "/plugins"}}, 409),
        ("POST", f"{v}/decompress", {"json": {"root": "/", "file": "cfg/server.properties"}}, 422),
    ]:
        answer = c.request(method, path, **kwargs)
        assert answer.status_code == code, (path, kwargs, answer.text)
        assert answer.json()["detail"]


def test_streamed_upload_and_download_round_trip(make_agent: object, test_image: str) -> None:
    agent = make_agent(files={"max_upload": 8 * 1024 * 1024})  # type: ignore[operator]
    root = server(agent, test_image, "files-up")
    payload = os.urandom(5 * 1024 * 1024 + 17)  # past server.max_body_size (1 MiB)

    def chunks() -> object:
        for at in range(0, len(payload), 300_000):
            yield payload[at : at + 300_000]

    answer = agent.client.put(
        "/volumes/files-up/upload", params={"path": "/maps/world.bin"}, content=chunks()
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "path": "/maps/world.bin", "size": len(payload)}
    with agent.client.stream(
        "GET", "/volumes/files-up/read", params={"path": "/maps/world.bin"}
    ) as response:
        assert response.headers["content-length"] == str(len(payload))
        digest = hashlib.sha256()
        for block in response.iter_bytes():
            digest.update(block)
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert (root / "maps/world.bin").read_bytes() == payload
    # too large: refused by its length, or while streaming; nothing is left behind
    big = agent.client.put(
        "/volumes/files-up/upload", params={"path": "/big.bin"}, content=b"x" * (9 * 1024 * 1024)
    )
    assert big.status_code == 413 and "files.max_upload" in big.json()["detail"]

    def endless() -> object:
        for _ in range(40):
            yield b"y" * 262144

    streamed = agent.client.put(
        "/volumes/files-up/upload", params={"path": "/new/deeper/big.bin"}, content=endless()
    )
    assert streamed.status_code == 413, streamed.text
    assert sorted(os.listdir(root)) == ["maps"]
    assert os.listdir(root / "maps") == ["world.bin"]


def test_links_and_devices_the_container_plants_lead_nowhere(
    agent: Agent, test_image: str, outside: Path
) -> None:
    root = server(agent, test_image, "files-evil")
    exec_in(agent, "files-evil", f"ln -s {outside} /data/escape")
    exec_in(agent, "files-evil", f"ln -s {outside}/secret.txt /data/secret")
    exec_in(agent, "files-evil", "mknod /data/null c 1 3 && mkfifo /data/pipe")
    os.link(outside / "secret.txt", root / "hard")  # a hard link only the host could make
    c = agent.client
    v = "/volumes/files-evil"
    attempts = [
        ("GET", "/read", {"params": {"path": "/escape/secret.txt"}}),
        ("GET", "/read", {"params": {"path": "/secret"}}),
        ("GET", "/read", {"params": {"path": "/hard"}}),
        ("GET", "/read", {"params": {"path": "/null"}}),
        ("GET", "/read", {"params": {"path": "/pipe"}}),
        ("GET", "/read", {"params": {"path": f"/../../../../../..{outside}/secret.txt"}}),
        ("GET", "/files", {"params": {"path": "/escape"}}),
        ("GET", "/search", {"params": {"pattern": "secret", "path": "/escape"}}),
        ("POST", "/write", {"json": {"filename": "/escape/secret.txt", "content": "owned"}}),
        ("POST", "/write", {"json": {"filename": "/escape/new.txt", "content": "owned"}}),
        ("POST", "/write", {"json": {"filename": "/secret", "content": "owned"}}),
        ("POST", "/write", {"json": {"filename": "/hard", "content": "owned"}}),
        ("PUT", "/upload", {"params": {"path": "/escape/up.bin"}, "content": b"owned"}),
        ("POST", "/chmod", {"json": {"path": "/hard", "mode": "777"}}),
        ("POST", "/chmod", {"json": {"path": "/escape/secret.txt", "mode": "777"}}),
        ("POST", "/create-folder", {"json": {"root": "/escape", "name": "x"}}),
        ("POST", "/copy", {"json": {"source": "/escape", "destination": "/c", "is_folder": True}}),
        ("POST", "/rename", {"json": {"from": "/escape/secret.txt", "to": "/mine.txt"}}),
        ("POST", "/delete", {"json": {"root": "/escape", "files": ["secret.txt"]}}),
        ("POST", "/decompress", {"json": {"root": "/escape", "file": "x.zip"}}),
    ]
    for method, path, kwargs in attempts:
        answer = c.request(method, f"{v}{path}", **kwargs)
        assert 400 <= answer.status_code < 500, (path, kwargs, answer.text)
        assert answer.json()["detail"], answer.text
        untouched(outside)
    # only names are shown, nothing behind them; the compress skips them all
    listing = c.get(f"{v}/files/detailed").json()["files"]
    assert {e["name"]: e["is_symlink"] for e in listing} == {
        "escape": True,
        "hard": False,
        "null": False,
        "pipe": False,
        "secret": True,
    }
    packed = c.post(
        f"{v}/compress",
        json={"sources": ["/escape", "/secret", "/hard", "/null", "/pipe"], "output": "/a.tgz"},
    )
    assert packed.status_code == 200 and packed.json()["skipped"] == 5, packed.text
    c.post(f"{v}/delete", json={"root": "/", "files": ["escape", "secret", "hard"]})
    untouched(outside)
    assert (outside / "secret.txt").stat().st_nlink == 1


def test_a_directory_swapped_for_a_symlink_meanwhile_never_leads_outside(
    agent: Agent, test_image: str, outside: Path
) -> None:
    """The container swaps ``/data/d`` between a real directory and a link to the host while the
    agent works through ``/d`` in a loop; both outcomes happen, nothing outside changes."""
    swap = (
        "trap 'exit 0' TERM; while true; do rm -rf /data/d; mkdir /data/d; "
        f"echo in > /data/d/secret.txt; rm -rf /data/d; ln -s {outside} /data/d; done"
    )
    server(agent, test_image, "files-race", command=swap)
    c = agent.client
    v = "/volumes/files-race"
    statuses: dict[int, int] = {}
    began = time.monotonic()
    rounds = 0
    while rounds < 400 or not (statuses.get(200) and sum(statuses.values()) > statuses[200]):
        rounds += 1
        for answer in (
            c.post(f"{v}/write", json={"filename": "/d/x.txt", "content": "agent"}),
            c.get(f"{v}/read", params={"path": "/d/secret.txt"}),
            c.get(f"{v}/files", params={"path": "/d"}),
            c.put(f"{v}/upload", params={"path": "/d/u.bin"}, content=b"agent"),
            c.post(f"{v}/chmod", json={"path": "/d/secret.txt", "mode": "777"}),
        ):
            assert answer.status_code < 500, answer.text
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if answer.status_code == 200 and answer.request.url.path.endswith("/read"):
                # the container's own file (maybe caught half-written), never the host's
                assert answer.content in (b"", b"in\n")
        untouched(outside)
        assert time.monotonic() - began < 120, statuses
    assert statuses.get(200) and any(code >= 400 for code in statuses), statuses


def test_upload_token_is_the_api_token_or_nothing(agent: Agent, test_image: str) -> None:
    server(agent, test_image, "files-auth")
    url = f"{agent.url}/volumes/files-auth/upload?path=/a"
    assert httpx.put(url, content=b"x").status_code == 401
    jwt_like = httpx.put(url, content=b"x", headers={"Authorization": "Bearer a.b.c"})
    assert jwt_like.status_code == 401  # not enrolled: only the API token opens it
    ok = httpx.put(url, content=b"x", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200, ok.text


def _zip_slip(outside: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("ok.txt", "fine")
        z.writestr(f"../../../../../../../..{outside}/secret.txt", "owned")
    return buffer.getvalue()


def _tar_with(member: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        first = tarfile.TarInfo("ok.txt")
        first.size = 4
        tar.addfile(first, io.BytesIO(b"fine"))
        tar.addfile(member, io.BytesIO(b"owned") if member.isfile() else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 5 if kind == tarfile.REGTYPE else 0
    return info


def test_hostile_archives_and_names_over_http(agent: Agent, test_image: str, outside: Path) -> None:
    root = server(agent, test_image, "files-arch")
    c = agent.client
    v = "/volumes/files-arch"
    archives = {
        "slip.zip": _zip_slip(outside),
        "dotdot.tgz": _tar_with(_member(f"../../../../../../..{outside}/secret.txt")),
        "absolute.tgz": _tar_with(_member(f"{outside}/secret.txt")),
        "symlink.tgz": _tar_with(_member("escape", tarfile.SYMTYPE, str(outside))),
        "hardlink.tgz": _tar_with(_member("hard", tarfile.LNKTYPE, f"{outside}/secret.txt")),
        "device.tgz": _tar_with(_member("null", tarfile.CHRTYPE)),
    }
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (300 * 1024 * 1024))
    archives["bomb.zip"] = bomb.getvalue()
    for name, data in archives.items():
        up = c.put(f"{v}/upload", params={"path": f"/in/{name}"}, content=data)
        assert up.status_code == 200, up.text
        answer = c.post(f"{v}/decompress", json={"root": "/in", "file": name})
        expected = 413 if name == "bomb.zip" else 422
        assert answer.status_code == expected, (name, answer.text)
        assert answer.json()["detail"]
        untouched(outside)
        assert sorted(os.listdir(root / "in")) == sorted(
            list(archives)[: list(archives).index(name) + 1]
        )
    # a name that is not UTF-8, made by the container: hidden from listings, never a 500
    exec_in(agent, "files-arch", "touch \"$(printf '/data/in/bad\\377name')\"")
    listed = c.get(f"{v}/files", params={"path": "/in"}).json()
    assert listed["hidden"] == 1 and "ok.txt" not in listed["files"]
    assert c.get(f"{v}/search", params={"pattern": "name"}).json()["files"] == []
    surrogate = c.post(
        f"{v}/write",
        content=b'{"filename": "/bad\\udcffname", "content": "x"}',
        headers={"Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422, surrogate.text
    assert c.post(f"{v}/delete", json={"root": "/", "files": ["in"]}).status_code == 200
    assert os.listdir(root) == []
