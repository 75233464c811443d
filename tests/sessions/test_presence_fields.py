"""What a presence may hold (kernelpad.sessions.room.presence), on awareness updates built as
y-protocols clients build them, and as YjsSync keeps and relays them: no server, milliseconds."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from pycrdt import Awareness, Doc, create_awareness_message, read_message

from kernelpad.sessions.room import presence
from kernelpad.sessions.room.yjs import YjsSync

OVERLAY = (
    "red; position: fixed; top: 0; left: 0; width: 100vw; height: 100vh; z-index: 99999;"
    " content: 'Session expired: sign in again'"
)
PAD_USER = {"name": "Ada", "color": "#d32f2f", "colorLight": "#d32f2f33", "clientId": "c-0a1b"}
CURSOR = {
    "anchor": {"type": None, "tname": None, "item": {"client": 7, "clock": 3}, "assoc": 0},
    "head": {"type": None, "tname": None, "item": {"client": 7, "clock": 9}, "assoc": 0},
}


def update_of(*states: Any) -> tuple[bytes, list[int]]:
    """An awareness update of one client per state, as pycrdt (like y-protocols) encodes it."""
    ids = []
    parts = []
    for state in states:
        awareness = Awareness(Doc())
        awareness.set_local_state(state)
        parts.append(awareness.encode_awareness_update([awareness.client_id]))
        ids.append(awareness.client_id)
    # One update of them all: the count, then each one's entry (its update without the count).
    body = b"".join(part[1:] for part in parts)
    return bytes([len(states)]) + body, ids


def states_of(update: bytes | None) -> dict[int, Any]:
    """The states an update gives, as another client applies it."""
    assert update is not None
    awareness = Awareness(Doc())
    awareness.apply_awareness_update(update, "test")
    return {cid: state for cid, state in awareness.states.items() if cid != awareness.client_id}


def test_the_pads_own_presence_passes_as_it_is() -> None:
    update, _ = update_of({"user": PAD_USER, "cursor": CURSOR}, {"user": {"name": "Zoë 李"}})
    checked = presence.check_update(update)
    assert checked.update is update and checked.dropped == ()


def test_a_colour_that_restyles_the_page_is_left_out() -> None:
    user = {**PAD_USER, "color": OVERLAY}
    update, [cid] = update_of({"user": user, "cursor": CURSOR})
    checked = presence.check_update(update)
    assert states_of(checked.update) == {
        cid: {"user": {k: v for k, v in PAD_USER.items() if k != "color"}, "cursor": CURSOR}
    }
    [dropped] = checked.dropped
    assert dropped.startswith(f"{cid}: user.color ") and "position: fixed" in dropped


@pytest.mark.parametrize(
    ("field", "value", "fits"),
    [
        ("color", "#00AAff", True),
        ("color", "#00aaff33", False),  # the caret's colour is opaque
        ("color", "#0af", False),
        ("color", "#00aaff ", False),
        ("color", "#00aaff;position:fixed", False),
        ("color", "url(https://example.com/x)", False),
        ("color", 255, False),
        ("color", None, False),
        ("colorLight", "#00aaff33", True),
        ("colorLight", "#00aaff", True),
        ("colorLight", "#00aaff3", False),
        ("colorLight", OVERLAY, False),
        ("colorLight", ["#00aaff"], False),
    ],
)
def test_colours_are_hex_digits_only(field: str, value: Any, fits: bool) -> None:
    update, [cid] = update_of({"user": {**PAD_USER, field: value}})
    checked = presence.check_update(update)
    user = states_of(checked.update)[cid]["user"]
    assert (field in user) is fits and (checked.dropped == ()) is fits
    if fits:
        assert user[field] == value


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("  Ada Lovelace ", "Ada Lovelace"),
        ("Zoë 李雷 🚀", "Zoë 李雷 🚀"),
        ("Alan\u202e(tsoh)", None),  # a right-to-left override
        ("Al\u200ban", None),  # zero-width space (Unicode's Cf)
        ("Alan\u2028Grace", None),  # line separator (Zl)
        ("Alan\u2029Turing", None),  # paragraph separator (Zp)
        ("Alan\u2029", "Alan"),  # trimmed, as white space
        ("Alan\u0007", None),  # a control character (Cc)
        ("\ud800", None),  # half a surrogate pair (Cs)
        ("   ", None),
        ("A" * 101, None),
        (42, None),
    ],
)
def test_names_follow_the_rule_of_every_name(name: Any, shown: str | None) -> None:
    update, [cid] = update_of({"user": {**PAD_USER, "name": name}})
    user = states_of(presence.check_update(update).update)[cid]["user"]
    assert user.get("name") == shown
    assert {k: v for k, v in user.items() if k != "name"} == {
        k: v for k, v in PAD_USER.items() if k != "name"
    }


def test_a_state_too_large_or_not_an_object_is_left_out_whole() -> None:
    big = {"user": PAD_USER, "notes": "x" * presence.MAX_STATE_BYTES}
    update, [good, large, listed, gone] = update_of({"user": PAD_USER}, big, [1, 2], None)
    checked = presence.check_update(update)
    # pycrdt's Awareness keeps a client that left (null) out of its states.
    assert states_of(checked.update) == {good: {"user": PAD_USER}}
    assert [entry.client for entry in presence.decode(checked.update or b"")] == [good, gone]
    assert [line.split(":")[0] for line in checked.dropped] == [str(large), str(listed)]
    # Nothing left: nothing to keep or relay.
    update, _ = update_of(big)
    assert presence.check_update(update).update is None


def test_a_user_that_is_not_an_object_goes_and_the_rest_stays() -> None:
    update, [cid] = update_of({"user": OVERLAY, "cursor": CURSOR})
    assert states_of(presence.check_update(update).update) == {cid: {"cursor": CURSOR}}


@pytest.mark.parametrize(
    "update",
    [
        b"\x01\x05",  # cut short
        b"\x01\x05\x01\x03abc",  # not JSON
        b"\x01\x05\x01\x03NaN",  # JavaScript's JSON.parse throws on it
        b"\x01\x05\x01\x02\xff\xfe",  # not UTF-8
    ],
)
def test_what_is_not_an_awareness_update_raises(update: bytes) -> None:
    with pytest.raises(ValueError):
        presence.check_update(update)


def test_names_beyond_ascii_are_encoded_by_their_bytes() -> None:
    state = json.dumps({"user": {"name": "Zoë"}}, ensure_ascii=False)
    update = presence.encode([presence.Entry(5, 1, state)])
    assert presence.decode(update) == [presence.Entry(5, 1, state)]
    assert states_of(update) == {5: {"user": {"name": "Zoë"}}}


# As a room's YjsSync keeps and relays presence


@dataclass(eq=False)
class Peer:
    client_id: str
    role: str = "candidate"
    sent: list[bytes] = field(default_factory=list)

    def send_bytes(self, message: bytes) -> None:
        self.sent.append(message)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        pass


def test_no_other_client_receives_what_was_left_out(caplog: pytest.LogCaptureFixture) -> None:
    sync = YjsSync(Doc(), lambda peer, payload: None, session_id="s-presence")
    mallory, grace, late = Peer("c-mallory"), Peer("host-grace", "host"), Peer("c-late")
    sync.add(mallory)
    sync.add(grace)
    user = {**PAD_USER, "name": "Grace\u202e", "color": OVERLAY}
    update, [cid] = update_of({"user": user, "cursor": CURSOR})
    with caplog.at_level(logging.WARNING, "kernelpad.sessions.room.yjs"):
        assert sync.receive(mallory, create_awareness_message(update)) is None
    # Grace gets the presence without the colour and the name; so does one who comes later.
    expected = {cid: {"user": {"colorLight": "#d32f2f33", "clientId": "c-0a1b"}, "cursor": CURSOR}}
    [relayed] = grace.sent
    assert states_of(read_message(relayed[1:])) == expected
    assert sync.awareness.states[cid] == expected[cid]
    assert states_of(read_message(sync.add(late)[-1][1:])) == expected
    assert mallory.sent == []
    # Said once, with the session and the participant.
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.__dict__["session_id"] == "s-presence"
    assert "c-mallory" in record.getMessage()
    assert "user.color" in record.getMessage() and "user.name" in record.getMessage()
    # A presence of nothing but a bad state: nothing kept, nothing relayed.
    update, [other] = update_of({"user": PAD_USER, "notes": "x" * presence.MAX_STATE_BYTES})
    sync.receive(mallory, create_awareness_message(update))
    assert len(grace.sent) == 1 and other not in sync.awareness.states
