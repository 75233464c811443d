"""A room driven directly: Yjs sync and awareness, the JSON protocol's whole texts and versions,
members, runs' inputs and what reaches storage. pycrdt documents on both sides, fake sockets and
a fake store: no server, no kernel, milliseconds a test."""

from __future__ import annotations

import asyncio

import pytest
from pycrdt import (
    Array,
    Awareness,
    Doc,
    Map,
    Text,
    YMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

from kernelpad.errors import (
    DocumentTooLarge,
    EditingLocked,
    ParticipantRemoved,
    SessionEnded,
    SessionFull,
)
from kernelpad.sessions.access import Access, DocumentLimits, Rules
from kernelpad.sessions.document import SessionDocument
from kernelpad.sessions.events import InputRequest
from kernelpad.sessions.room import persistence, text_sync
from kernelpad.sessions.room.room import Room
from tests.sessions.room_fakes import (
    FakeJson,
    FakeStore,
    FakeYjs,
    person,
    source_of,
    synced,
    tick,
)


async def test_a_yjs_edit_reaches_everyone_and_storage_with_its_author(
    room: Room, store: FakeStore
) -> None:
    alice, bob, json = FakeYjs("alice"), FakeYjs("bob"), FakeJson("carol")
    for peer in (alice, bob):
        greeting = room.add_yjs_peer(peer)
        reply = room.yjs.receive(peer, create_sync_message(peer.doc))
        assert reply is not None
        peer.send_bytes(reply)  # step 2: the server's document
        assert len(greeting) == 1
    room.add_json_peer(json)
    version = room.text.version

    store.hold = True
    reply = room.yjs.receive(alice, alice.edit("x = 2\n"))
    assert reply is None
    assert room.document.code == "print(1)\nx = 2\n"
    assert store.updates[-1][1] == "alice"
    # Nobody sees it before it is committed.
    await tick()
    assert source_of(bob.doc) == "print(1)\n" and json.of("code_update") == []
    store.commit()
    await tick()
    # Bob gets the update; Alice, who made it, does not get it back.
    assert source_of(bob.doc) == "print(1)\nx = 2\n"
    assert not any(m == bob.sent[-1] for m in alice.sent)
    await tick()
    [update] = json.of("code_update")
    assert update == {
        "client_id": None,  # a Yjs peer's edit names no JSON author
        "display_name": None,
        "code": "print(1)\nx = 2\n",
        "language": "python",
        "version": version + 1,
    }


async def test_json_texts_from_one_version_merge(room: Room) -> None:
    ann, ben = FakeJson("ann"), FakeJson("ben", display_name="Ben")
    room.add_json_peer(ann)
    room.add_json_peer(ben)
    base = room.text.version
    room.replace_code(ann, "# ann\nprint(1)\n", base)
    room.replace_code(ben, "print(1)\n# ben\n", base)
    assert room.document.code == "# ann\nprint(1)\n# ben\n"
    await tick()
    # Both changes came in one burst from two peers: one version, no single author.
    assert ann.of("code_update")[-1]["code"] == "# ann\nprint(1)\n# ben\n"
    assert ben.of("code_update")[-1]["client_id"] is None
    assert room.text.version == base + 1


async def test_a_json_text_without_a_version_is_based_on_the_closest_it_had(room: Room) -> None:
    ann = FakeJson("ann")
    room.add_json_peer(ann)
    room.replace_code(ann, "print(12)\n")
    await tick()
    room.replace_code(ann, "print(1)\n")  # typed a character, deleted it again
    await tick()
    assert room.document.code == "print(1)\n"


async def test_an_unchanged_text_still_tells_a_numbered_peer_its_version(room: Room) -> None:
    ann = FakeJson("ann")
    room.add_json_peer(ann)
    version = room.text.version
    room.replace_code(ann, "print(1)\n", version)
    await tick()
    assert ann.of("code_update") == []  # it already has that version
    room.document.replace_code("print(2)\n")
    await tick()
    room.replace_code(ann, "print(2)\n", room.text.version)
    assert ann.of("code_update")[-1]["version"] == version + 1


async def test_a_locked_document_refuses_candidates_not_the_host(
    room: Room, access: Access
) -> None:
    access.set_rules("s1", Rules(editing_locked=True))
    cleo, hana = FakeJson("cleo"), FakeJson("hana", role="host")
    yuri = FakeYjs("yuri")
    room.add_yjs_peer(yuri)
    yuri.send_bytes(room.yjs.receive(yuri, create_sync_message(yuri.doc)) or b"")
    with pytest.raises(EditingLocked):
        room.replace_code(cleo, "nope\n")
    assert room.yjs.receive(yuri, yuri.edit("nope\n")) is None
    assert room.document.code == "print(1)\n"
    room.replace_code(hana, "print('host')\n")
    assert room.document.code == "print('host')\n"


async def test_a_refused_yjs_change_is_undone_for_everyone_and_typing_goes_on(
    room: Room, access: Access, store: FakeStore
) -> None:
    """A change made before its author heard of the lock is taken and undone at once, so
    every copy converges on the locked text and the author's later changes still integrate
    (a dropped update would leave all of them pending for ever)."""
    cleo, watcher = await synced(room, FakeYjs("cleo")), await synced(room, FakeYjs("hana", "host"))
    cleos_page = FakeJson("cleo")
    room.add_json_peer(cleos_page)
    room.yjs.receive(cleo, cleo.edit("a = 1\n"))
    access.set_rules("s1", Rules(editing_locked=True))
    for text in ("b = 2\n", "c = 3\n"):  # typed before the page heard of the lock
        room.yjs.receive(cleo, cleo.edit(text))
    await tick()
    locked = "print(1)\na = 1\n"
    assert room.document.code == locked
    assert source_of(cleo.doc) == source_of(watcher.doc) == locked
    assert [e["code"] for e in cleos_page.of("error")] == ["editing_locked", "editing_locked"]
    assert [author for _, author in store.updates[-4:]] == ["cleo", None, "cleo", None]
    access.set_rules("s1", Rules())
    room.yjs.receive(cleo, cleo.edit("d = 4\n"))
    await tick()
    assert room.document.code == source_of(watcher.doc) == source_of(cleo.doc) == locked + "d = 4\n"
    rebuilt = SessionDocument("python", [data for data, _ in store.updates])
    assert rebuilt.code == room.document.code


async def test_a_cell_past_its_limit_is_undone(store: FakeStore, access: Access) -> None:
    limits = DocumentLimits(max_cell_size=2000, max_notebook_size=5000)
    document = SessionDocument.create("print(1)\n", "python")
    room = Room("s1", document, store, lambda role, action: None, limits)  # type: ignore[arg-type]
    mallory, reader = await synced(room, FakeYjs("mallory")), await synced(room, FakeYjs("r"))
    for _ in range(3):
        room.yjs.receive(mallory, mallory.edit("x" * 600))
    assert len(room.document.code) == 9 + 1800
    room.yjs.receive(mallory, mallory.edit("y" * 600))  # 2409 characters: over
    await tick()
    assert room.document.code == source_of(mallory.doc) == source_of(reader.doc)
    assert len(room.document.code) == 1809
    room.yjs.receive(mallory, mallory.edit("z" * 100))  # still room for this
    assert room.document.code.endswith("z" * 100)
    json = FakeJson("mallory")
    room.add_json_peer(json)
    with pytest.raises(DocumentTooLarge):
        room.replace_code(json, "w" * 2001)
    assert room.document.code.endswith("z" * 100)


async def test_the_notebook_past_its_limit_is_undone(store: FakeStore) -> None:
    limits = DocumentLimits(max_cell_size=2000, max_notebook_size=3000)
    document = SessionDocument.create("print(1)\n", "python")
    room = Room("s1", document, store, lambda role, action: None, limits)  # type: ignore[arg-type]
    mallory = await synced(room, FakeYjs("mallory"))
    cells = mallory.doc.get("cells", type=Array)
    updates: list[bytes] = []
    subscription = mallory.doc.observe(lambda event: updates.append(event.update))
    for n in range(3):
        cells.append(Map({"id": f"x{n}", "cell_type": "markdown", "source": Text("m" * 1000)}))
    mallory.doc.unobserve(subscription)
    for update in updates:
        room.yjs.receive(mallory, create_update_message(update))
    await tick()
    total, _ = room.document.sizes()
    assert total <= 3000 and len(room.document.cells()) == 3  # the third was undone
    assert len(mallory.doc.get("cells", type=Array)) == 3


async def test_awareness_is_relayed_and_owned(room: Room) -> None:
    alice, bob = FakeYjs("alice"), FakeYjs("bob")
    room.add_yjs_peer(alice)
    room.add_yjs_peer(bob)
    presence = Awareness(alice.doc)
    presence.set_local_state({"user": {"name": "Alice"}})
    message = create_awareness_message(presence.encode_awareness_update([presence.client_id]))
    room.yjs.receive(alice, message)
    assert bob.sent[-1] == message
    # Bob cannot speak for Alice's presence.
    forged = Awareness(Doc(client_id=presence.client_id))
    forged.set_local_state({"user": {"name": "Mallory"}})
    before = len(alice.sent)
    room.yjs.receive(
        bob, create_awareness_message(forged.encode_awareness_update([presence.client_id]))
    )
    assert len(alice.sent) == before
    # One who joins now sees Alice at once; when Alice goes, Bob is told.
    carol = FakeYjs("carol")
    assert len(room.add_yjs_peer(carol)) == 2
    room.remove_yjs_peer(alice)
    assert bob.sent[-1][0] == YMessageType.AWARENESS
    assert presence.client_id not in room.yjs.awareness.states


async def test_bad_yjs_messages_raise(room: Room) -> None:
    peer = FakeYjs("p")
    with pytest.raises(ValueError):
        room.yjs.receive(peer, b"")
    with pytest.raises(ValueError):
        room.yjs.receive(peer, bytes([YMessageType.SYNC, 2, 5, 1, 2]))
    with pytest.raises(ValueError):
        room.yjs.receive(peer, bytes([YMessageType.AWARENESS, 9]))


async def test_members_within_the_limit(room: Room) -> None:
    watcher = FakeJson("w", role="host")
    room.add_json_peer(watcher)
    room.admit(person("ann"), 2)
    room.admit(person("ann"), 2)  # a second tab
    room.admit(person("ben"), 2)
    with pytest.raises(SessionFull):
        room.admit(person("cid"), 2)
    assert [p["participant_count"] for p in watcher.of("participant_joined")] == [1, 2]
    assert room.depart("ann") is None  # one tab of two
    assert room.depart("ann") is not None
    assert watcher.of("participant_left")[-1]["client_id"] == "ann"
    room.remove("ben")
    with pytest.raises(ParticipantRemoved):
        room.admit(person("ben"), 5)
    room.close_all(4410, "ended")
    assert watcher.closed == (4410, "ended")
    with pytest.raises(SessionEnded):
        room.admit(person("dan"), 5)


async def test_inputs_are_answered_by_run_and_everyone_is_told(room: Room, access: Access) -> None:
    watcher = FakeJson("w")
    room.add_json_peer(watcher)
    first = room.start_run("e1", None, "python", "input()")
    second = room.start_run("e2", None, "python", "input()")
    one = asyncio.ensure_future(first.input("a? ", False))
    two = asyncio.ensure_future(second.input("b? ", True))
    await tick()
    assert [r["execution_id"] for r in room.inputs.open()] == ["e1", "e2"]
    assert room.answer_input("candidate", "B", "e2")
    assert await two == "B"
    assert watcher.of("input_answered") == [{"execution_id": "e2"}]
    access.set_rules("s1", Rules(candidate_execution=False))
    with pytest.raises(Exception, match="turned running code off"):
        room.answer_input("candidate", "A")
    assert room.answer_input("host", "A")  # the oldest
    assert await one == "A"
    assert not room.answer_input("host", "C")
    assert isinstance(watcher.events[0], InputRequest)


async def test_a_cells_run_writes_its_outputs_and_count(room: Room) -> None:
    cell_id = room.document.cells()[0]["id"]
    watcher = FakeJson("w")
    room.add_json_peer(watcher)
    run = room.start_run("e1", cell_id, "python", "print(1)")
    run.started()
    run.output({"output_type": "stream", "name": "stdout", "text": "1\n"})
    run.finish(status="ok", execution_count=3, notices=[])
    run.finish(status="ok", execution_count=4, notices=[])  # once only
    cell = room.document.cells()[0]
    assert cell["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    assert cell["execution_count"] == 3
    # Nobody is told of the run before what the cell says of it is stored.
    assert watcher.events == []
    await tick()
    kinds = [event.type for event in watcher.events]
    assert kinds == [
        "kernel_status",
        "execution_started",
        "output",
        "execution_finished",
        "kernel_status",
    ]
    assert watcher.of("execution_finished")[0] == {
        "execution_id": "e1",
        "cell_id": cell_id,
        "language": "python",
        "status": "ok",
        "execution_count": 3,
        "notices": [],
    }


async def test_a_cells_run_ends_in_one_change_told_once_stored(
    room: Room, store: FakeStore
) -> None:
    """Its last outputs and its count go into the cell together: one stored update (and one
    to everyone), not two; its output and its end are told only once that is stored."""
    cell_id = room.document.cells()[0]["id"]
    watcher = FakeJson("w")
    room.add_json_peer(watcher)
    run = room.start_run("e1", cell_id, "python", "print(1)")
    run.started()
    await tick()
    stored = len(store.updates)
    store.hold = True
    run.output({"output_type": "stream", "name": "stdout", "text": "1\n"})
    run.finish(status="ok", execution_count=3, notices=[])
    await tick()
    [(_, author)] = store.updates[stored:]
    assert author is None  # kernelpad's
    assert watcher.of("output") == [] and watcher.of("execution_finished") == []
    store.commit()
    await tick()
    assert [event.type for event in watcher.events][-3:] == [
        "output",
        "execution_finished",
        "kernel_status",
    ]
    # What was stored before it, and it, make the cell as it ended.
    rebuilt = SessionDocument("python", [update for update, _ in store.updates])
    cell = rebuilt.cells()[0]
    assert cell["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    assert (cell["execution_count"], cell["execution_state"]) == (3, "idle")


async def test_storage_compacts_and_writes_the_code_behind(
    room: Room, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persistence, "COMPACT_AFTER", 3)
    ann = FakeJson("ann")
    room.add_json_peer(ann)
    for n in range(3):
        room.replace_code(ann, f"print({n + 10})\n")
        await tick()
    await tick()
    assert len(store.snapshots) == 1
    rebuilt = SessionDocument("python", [store.snapshots[0]])
    assert rebuilt.code == "print(12)\n"
    # One write at a time; once edits stop, the column is the document's code.
    assert store.codes[-1] == "print(12)\n"
    assert len(store.codes) <= 3
    room.settle()
    assert len(store.snapshots) == 1  # nothing changed since: nothing written


async def test_a_text_nobody_follows_is_read_within_its_delay_or_when_asked(
    room: Room, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_sync, "UNFOLLOWED_WITHIN", 0.05)
    # The browser pad: on the JSON socket for the session's events, the text over Yjs.
    pad, typist = FakeJson("pad", display_name="Pad"), await synced(room, FakeYjs("typist"))
    room.add_json_peer(pad, code_updates=False)
    version = room.text.version
    store.codes.clear()
    for line in ("a = 1\n", "b = 2\n", "c = 3\n"):
        room.yjs.receive(typist, typist.edit(line))
        await tick()
    assert store.codes == []  # not read keystroke by keystroke
    await asyncio.sleep(0.1)
    # One read for the three edits: one version, the column written once.
    assert store.codes == ["print(1)\na = 1\nb = 2\nc = 3\n"]
    assert room.text.version == version + 1
    assert pad.of("code_update") == []

    room.yjs.receive(typist, typist.edit("d = 4\n"))
    await tick()
    # Asked before the delay (a JSON peer joining, say): read then.
    assert room.text.code.endswith("d = 4\n") and room.text.version == version + 2
    assert store.codes[-1].endswith("d = 4\n")

    # A peer sent the text: every change is read right after it, and the text goes out.
    follower = FakeJson("follower")
    room.add_json_peer(follower)
    room.yjs.receive(typist, typist.edit("e = 5\n"))
    await tick()
    assert follower.of("code_update")[-1]["code"].endswith("e = 5\n")
    assert store.codes[-1].endswith("e = 5\n")

    # Nobody follows again; the last leave reads what is pending.
    room.remove_json_peer(follower)
    room.yjs.receive(typist, typist.edit("f = 6\n"))
    await tick()
    assert not store.codes[-1].endswith("f = 6\n")
    room.settle()
    await tick()
    assert store.codes[-1].endswith("f = 6\n")


async def test_one_commit_of_one_typist_goes_out_as_one_message(
    room: Room, store: FakeStore
) -> None:
    alice, bob, carol = FakeYjs("alice"), FakeYjs("bob"), FakeYjs("carol")
    for peer in (alice, bob, carol):
        await synced(room, peer)
    store.hold = True
    for text in "abc":
        room.yjs.receive(alice, alice.edit(text))
    before = len(bob.sent)
    store.commit()  # the three commit together
    await tick()
    assert len(bob.sent) == before + 1 and source_of(bob.doc) == "print(1)\nabc"
    # Two typists in one commit: each change goes to the others as it came.
    for peer, text in ((alice, "d"), (bob, "e")):
        room.yjs.receive(peer, peer.edit(text))
    before = len(carol.sent)
    store.commit()
    await tick()
    assert len(carol.sent) == before + 2
    assert source_of(carol.doc) == source_of(alice.doc) == source_of(bob.doc)


async def test_an_empty_sync_step_under_a_lock_is_no_refusal(
    room: Room, access: Access, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that connects while editing is locked answers the server's state vector with
    an update holding nothing new: nothing was refused, so nobody is told."""
    access.set_rules("s1", Rules(editing_locked=True))
    cleo, page = await synced(room, FakeYjs("cleo")), FakeJson("cleo")
    room.add_json_peer(page)
    # The server's step 1, as it opens a connection; cleo's answer is a step 2 of nothing new.
    answer = handle_sync_message(create_sync_message(room.document.ydoc)[1:], cleo.doc)
    assert answer is not None
    room.yjs.receive(cleo, answer)
    await tick()
    assert page.of("error") == [] and "undone" not in caplog.text
    # A real change is still refused, and said so.
    room.yjs.receive(cleo, cleo.edit("x"))
    await tick()
    assert [e["code"] for e in page.of("error")] == ["editing_locked"]
