"""``lightd_shared.files``: the file routes' bodies and the ``files.*`` commands in the union."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lightd_shared.commands import COMMAND, CommandResult, describe_command_errors
from lightd_shared.files import ChmodRequest, FileDone, FilesAnswer, RenameRequest, WriteRequest


def _problems(body: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as caught:
        COMMAND.validate_python(body)
    return describe_command_errors(caught.value.errors())


def test_files_commands_are_members_of_the_command_union() -> None:
    command = COMMAND.validate_python(
        {
            "type": "container",
            "action": "files.rename",
            "params": {"server": "s", "from": "/a", "to": "/b"},
        }
    )
    assert command.action == "files.rename"
    assert command.params.model_dump(by_alias=True)["from"] == "/a"  # type: ignore[union-attr]
    assert (
        _problems(
            {"type": "container", "action": "files.write", "params": {"server": "s", "path": "/a"}}
        )
        == "params.content: Field required"
    )
    assert "unknown files action" in _problems(
        {"type": "container", "action": "files.format", "params": {"server": "s"}}
    )
    assert "params.pattern" in _problems(
        {"type": "container", "action": "files.search", "params": {"server": "s", "pattern": ""}}
    )
    assert "files.list" in _problems({"type": "container", "action": "nope"})


def test_bodies_are_bounded_and_refuse_nul_and_bad_modes() -> None:
    with pytest.raises(ValidationError, match="NUL"):
        WriteRequest(filename="a\x00b", content="")
    with pytest.raises(ValidationError):
        WriteRequest(filename="x" * 4097, content="")
    with pytest.raises(ValidationError):
        ChmodRequest(path="/a", mode="4755")
    assert ChmodRequest(path="/a", mode="0755").mode == "0755"
    assert RenameRequest.model_validate({"from": "/a", "to": "/b"}).from_ == "/a"
    with pytest.raises(ValidationError, match="extra"):
        RenameRequest.model_validate({"from": "/a", "to": "/b", "force": True})


def test_a_files_answer_travels_typed_in_a_command_result() -> None:
    answer = FilesAnswer(action="files.write", done=FileDone(path="/a", size=3))
    result = CommandResult(id="c", node_id="n", status="success", data=answer)
    back = CommandResult.model_validate_json(result.model_dump_json())
    assert isinstance(back.data, FilesAnswer)
    assert back.data.done == FileDone(path="/a", size=3)
    assert back.model_dump(mode="json")["data"]["done"] == {
        "success": True,
        "path": "/a",
        "size": 3,
    }
