"""Reading a kernel's messages off the wire (kernelpad.kernels.wire), against jupyter_client's own
``Session`` on the same frames: the same message, its dates left as sent; bad ones refused."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import zmq
from jupyter_client.session import Session

from kernelpad.kernels.wire import BadMessage, read_message


def frames_of(session: Session, msg_type: str = "stream", **header: object) -> list[bytes]:
    """The frames a kernel sends, after the identities' delimiter."""
    parent = session.msg("execute_request", {"code": "1+1"})
    message = session.msg(msg_type, {"name": "stdout", "text": "2\n"}, parent=parent)
    message["header"].update(header)
    frames = session.serialize(message)
    _, parts = session.feed_identities(frames)
    return [as_bytes(part) for part in parts]


def as_bytes(part: bytes | zmq.Frame) -> bytes:
    """A frame's bytes (feed_identities gives back bytes here, as serialize gave them)."""
    return part if isinstance(part, bytes) else part.bytes


def test_a_message_reads_as_jupyter_client_reads_it_with_its_dates_as_sent() -> None:
    session = Session(key=b"secret")
    parts = frames_of(session)
    ours = read_message(session, parts)
    theirs = session.deserialize(list(parts), content=False)
    for key in ("msg_id", "msg_type", "metadata", "content"):
        assert ours[key] == theirs[key]
    sent_header = json.loads(parts[1])
    assert ours["header"] == sent_header  # the date a string, as sent
    assert isinstance(ours["header"]["date"], str)
    assert ours["header"]["date"] != theirs["header"]["date"]  # jupyter_client's: a datetime
    assert ours["parent_header"] == json.loads(parts[2])
    assert ours["parent_header"]["msg_id"] == theirs["parent_header"]["msg_id"]
    assert session.unpack(ours["content"]) == {"name": "stdout", "text": "2\n"}


@pytest.mark.parametrize(
    ("mangle", "said"),
    [
        (lambda parts: [b"0" * 64, *parts[1:]], "wrong signature"),
        (lambda parts: [b"", *parts[1:]], "unsigned"),
        (lambda parts: [parts[0], parts[1].replace(b"stream", b"strean"), *parts[2:]], "wrong"),
        (lambda parts: parts[:4], "4 frames"),
    ],
)
def test_a_message_not_signed_by_the_kernels_key_is_refused(
    mangle: Callable[[list[bytes]], list[bytes]], said: str
) -> None:
    session = Session(key=b"secret")
    parts = mangle(frames_of(session))
    with pytest.raises(BadMessage, match=said):
        read_message(session, parts)


def test_without_a_key_nothing_is_checked() -> None:
    session = Session(key=b"")
    parts = frames_of(session)
    assert read_message(session, [b"", *parts[1:]])["msg_type"] == "stream"


def test_a_message_of_an_older_protocol_is_adapted_as_jupyter_client_adapts_it() -> None:
    session = Session(key=b"secret")
    ours = read_message(session, frames_of(session, msg_type="kernel_thing", version="4.1"))
    assert ours["header"]["version"].startswith("5.")
    # A version 4 stream: its text was "data".
    parent = session.msg("execute_request", {"code": "print(2)"})
    old = session.msg("stream", {"name": "stdout", "data": "2\n"}, parent=parent)
    old["header"]["version"] = "4.1"
    _, parts = session.feed_identities(session.serialize(old))
    ours = read_message(session, [as_bytes(part) for part in parts])
    theirs = session.deserialize(parts)
    assert ours["msg_type"] == theirs["msg_type"] == "stream"
    assert session.unpack(ours["content"]) == theirs["content"]
    assert theirs["content"]["text"] == "2\n"
