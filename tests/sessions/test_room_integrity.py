"""What a participant cannot do to the notebook through its own Yjs connection, and what the
room does when storage fails. A room driven directly, pycrdt documents on both sides.

- A change built on what the server does not have is not applied at all (pycrdt would hold
  it back and integrate it later, inside another participant's change, past the lock and the
  size limits), and its author's connection is closed.
- A change that adds a part the notebook does not have is not applied either: nothing would
  measure it.
- Outputs, execution counts and run states are kernelpad's to write: a participant's change to
  them is undone for everyone. Moving a cell with its outputs is kernelpad's to do.
- A change whose commit fails is written again until it is stored, and nobody else sees it (or
  anything after it) before.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, create_update_message

from kernelpad.errors import ChangeNotMerged, EditingLocked
from kernelpad.sessions.access import Access, DocumentLimits, Rules
from kernelpad.sessions.document import SessionDocument
from kernelpad.sessions.room import persistence
from kernelpad.sessions.room.room import Room
from kernelpad.sessions.room.yjs_update import read_state_vector, read_update
from tests.sessions.room_fakes import FakeJson, FakeStore, FakeYjs, source_of, synced, tick


def changes(doc: Doc[Any], change: Any) -> bytes:
    """Make ``change`` (a function of ``doc``) in ``doc``; the update message it makes."""
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    with doc.transaction():
        change(doc)
    doc.unobserve(subscription)
    [update] = updates
    return create_update_message(update)


def first_cell(doc: Doc[Any]) -> Map[Any]:
    cell = doc.get("cells", type=Array)[0]
    assert isinstance(cell, Map)
    return cell


def append_source(text: str) -> Any:
    def change(doc: Doc[Any]) -> None:
        source = first_cell(doc)["source"]
        source.insert(len(source), text)

    return change


async def run_and_add_a_cell(room: Room) -> str:
    """The first cell ran (it has an output and a count), and a Markdown cell "second" follows
    it; the first cell's id."""
    first = str(room.document.cells()[0]["id"])
    room.document.begin_run(first)
    output = {"output_type": "stream", "name": "stdout", "text": "1\n"}
    room.document.append_outputs(first, [output])
    room.document.end_run(first, 1)
    room.document.notebook.append_cell(
        {"id": "second", "cell_type": "markdown", "source": "# two", "metadata": {}}
    )
    await tick()
    return first


def in_step(room: Room) -> None:
    """The room's clocks are its document's."""
    assert room._clocks == read_state_vector(room.document.ydoc.get_state())


async def test_a_change_built_on_what_the_server_lacks_is_not_applied(
    room: Room, access: Access, caplog: pytest.LogCaptureFixture
) -> None:
    """The candidate's change hangs on text the host has typed but not yet sent. pycrdt would
    hold it back, and integrate it inside the host's change when that comes: past the lock,
    as the host's. It is refused before anything is applied; the host's change comes alone."""
    host = await synced(room, FakeYjs("hana", "host"))
    cleo = await synced(room, FakeYjs("cleo"))
    typed = changes(host.doc, append_source("x = 1\n"))  # not sent yet
    cleo.doc.apply_update(host.doc.get_update())  # seen out of band
    injected = changes(cleo.doc, append_source("EVIL = True\n" * 100))
    access.set_rules("s1", Rules(editing_locked=True))
    caplog.set_level(logging.WARNING)

    with pytest.raises(ChangeNotMerged):
        room.yjs.receive(cleo, injected)
    assert room.document.code == "print(1)\n"
    assert "cleo" in caplog.text and "not applied" in caplog.text

    room.yjs.receive(host, typed)
    await tick()
    assert room.document.code == "print(1)\nx = 1\n"  # no EVIL, now or later
    in_step(room)


async def test_a_held_back_change_cannot_pass_the_size_limits(store: FakeStore) -> None:
    limits = DocumentLimits(max_cell_size=1000, max_notebook_size=2000)
    document = SessionDocument.create("print(1)\n", "python")
    room = Room("s1", document, store, lambda role, action: None, limits)  # type: ignore[arg-type]
    host, mallory = await synced(room, FakeYjs("hana", "host")), await synced(room, FakeYjs("m"))
    typed = changes(host.doc, append_source("y"))
    mallory.doc.apply_update(host.doc.get_update())
    with pytest.raises(ChangeNotMerged):
        room.yjs.receive(mallory, changes(mallory.doc, append_source("z" * 50_000)))
    room.yjs.receive(host, typed)
    assert room.document.code == "print(1)\ny"
    assert room.document.sizes()[0] <= 2000


async def test_a_deletion_of_what_the_server_lacks_is_not_applied(room: Room) -> None:
    host, cleo = await synced(room, FakeYjs("hana", "host")), await synced(room, FakeYjs("cleo"))
    typed = changes(host.doc, append_source("keep me\n"))
    cleo.doc.apply_update(host.doc.get_update())

    def delete_the_hosts_text(doc: Doc[Any]) -> None:
        source = first_cell(doc)["source"]
        del source[len("print(1)\n") : len(source)]

    deletion = changes(cleo.doc, delete_the_hosts_text)
    with pytest.raises(ChangeNotMerged):
        room.yjs.receive(cleo, deletion)
    room.yjs.receive(host, typed)
    assert room.document.code == "print(1)\nkeep me\n"


async def test_a_change_to_a_part_the_notebook_lacks_is_not_applied(room: Room) -> None:
    """A new root type would hold whatever its author put in it, measured by nothing."""
    mallory = await synced(room, FakeYjs("mallory"))

    def grow_elsewhere(doc: Doc[Any]) -> None:
        doc.get("elsewhere", type=Text).insert(0, "x" * 10_000)

    with pytest.raises(ChangeNotMerged):
        room.yjs.receive(mallory, changes(mallory.doc, grow_elsewhere))
    assert "elsewhere" not in read_update(room.document.state()).roots
    # The connection is closed by the socket; the room took nothing.
    in_step(room)


async def test_outputs_counts_and_states_are_kernelpads_alone(room: Room) -> None:
    """A candidate cannot show the interviewer outputs their code never printed: every such
    change is undone for everyone, and the rest of their editing goes on."""
    cleo, hana = await synced(room, FakeYjs("cleo")), await synced(room, FakeYjs("hana", "host"))
    page = FakeJson("cleo")
    room.add_json_peer(page)
    cell_id = room.document.cells()[0]["id"]
    room.document.begin_run(cell_id)
    room.document.append_outputs(
        cell_id, [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    )
    room.document.end_run(cell_id, 1)
    await tick()
    real = room.document.cells()[0]

    def fake_output(doc: Doc[Any]) -> None:
        outputs = first_cell(doc)["outputs"]
        outputs.append(
            Map({"output_type": "stream", "name": "stdout", "text": Text("ALL TESTS PASS\n")})
        )

    def edit_the_stream(doc: Doc[Any]) -> None:
        text = first_cell(doc)["outputs"][0]["text"]
        text.insert(0, "42 == 42 ")

    def fake_count(doc: Doc[Any]) -> None:
        first_cell(doc)["execution_count"] = 99

    def fake_running(doc: Doc[Any]) -> None:
        first_cell(doc)["execution_state"] = "running"

    def fake_cell(doc: Doc[Any]) -> None:
        outputs = Array([Map({"output_type": "stream", "name": "stdout", "text": "passed\n"})])
        cell = Map(
            {
                "id": "fake",
                "cell_type": "code",
                "source": Text("solve()"),
                "metadata": Map(),
                "outputs": outputs,
                "execution_count": 3,
            }
        )
        doc.get("cells", type=Array).append(cell)

    for forged in (fake_output, edit_the_stream, fake_count, fake_running, fake_cell):
        room.yjs.receive(cleo, changes(cleo.doc, forged))
        await tick()
        assert room.document.cells() == [real], forged.__name__
        assert first_cell(cleo.doc).to_py() == first_cell(hana.doc).to_py() == real
        assert len(cleo.doc.get("cells", type=Array)) == 1
    assert [e["code"] for e in page.of("error")] == ["forbidden"] * 5
    assert "outputs" in page.of("error")[0]["message"]

    # What a participant may do: type, add a cell as the pad makes it, clear a cell's outputs
    # by making it markdown.
    room.yjs.receive(cleo, changes(cleo.doc, append_source("x = 2\n")))

    def new_cell(doc: Doc[Any]) -> None:
        cell: Map[Any] = Map(
            {
                "id": "new",
                "cell_type": "code",
                "source": Text(""),
                "metadata": Map(),
                "outputs": Array(),
                "execution_count": None,
                "execution_state": "idle",
            }
        )
        doc.get("cells", type=Array).append(cell)

    def to_markdown(doc: Doc[Any]) -> None:
        cell = first_cell(doc)
        cell["cell_type"] = "markdown"
        for key in ("outputs", "execution_count", "execution_state"):
            del cell[key]

    room.yjs.receive(cleo, changes(cleo.doc, new_cell))
    room.yjs.receive(cleo, changes(cleo.doc, to_markdown))
    await tick()
    cells = room.document.cells()
    assert [c["id"] for c in cells] == [cell_id, "new"]
    assert cells[0]["source"] == "print(1)\nx = 2\n" and "outputs" not in cells[0]
    assert len(page.of("error")) == 5
    in_step(room)


async def test_moving_a_cell_keeps_its_outputs(room: Room, access: Access) -> None:
    hana, cleo = await synced(room, FakeYjs("hana", "host")), await synced(room, FakeYjs("cleo"))
    first = await run_and_add_a_cell(room)
    page = FakeJson("hana", role="host")
    room.cells.move(page, first, 5)  # past the end: last
    await tick()
    cells = room.document.cells()
    assert [c["id"] for c in cells] == ["second", first]
    assert cells[1]["outputs"][0]["text"] == "1\n" and cells[1]["execution_count"] == 1
    assert [c.to_py() for c in hana.doc.get("cells", type=Array)] == cells
    assert [c.to_py() for c in cleo.doc.get("cells", type=Array)] == cells
    access.set_rules("s1", Rules(editing_locked=True))
    with pytest.raises(EditingLocked):
        room.cells.move(FakeJson("cleo"), first, 0)
    in_step(room)


async def test_a_failed_commit_is_written_again_and_shown_to_nobody_before(
    room: Room, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persistence, "RETRY_FIRST", 0.01)
    alice, bob = await synced(room, FakeYjs("alice")), await synced(room, FakeYjs("bob"))
    page = FakeJson("bob")
    room.add_json_peer(page)
    stored = len(store.updates)
    store.failing = True
    room.yjs.receive(alice, alice.edit("a"))
    room.yjs.receive(alice, alice.edit("b"))
    for _ in range(5):
        await tick()
    assert source_of(bob.doc) == "print(1)\n"
    assert [e["code"] for e in page.of("error")] == ["not_saved"]  # told once
    assert page.of("code_update") == []
    store.failing = False
    while len(store.updates) < stored + 2:
        await tick()
    for _ in range(3):
        await tick()
    assert source_of(bob.doc) == "print(1)\nab"
    assert SessionDocument("python", [u for u, _ in store.updates]).code == "print(1)\nab"


async def test_a_deleted_or_moved_cell_comes_back_for_whoever_changed_it(room: Room) -> None:
    """Ctrl+Z outside an editor: the participant's last cell change is taken back, the cell
    with its outputs (written by kernelpad: a participant may not write outputs)."""
    hana = await synced(room, FakeYjs("hana", "host"))
    first = await run_and_add_a_cell(room)
    before = room.document.cells()
    ann, bob = FakeJson("ann", role="host"), FakeJson("bob", role="host")
    room.cells.move(ann, first, 1)
    room.cells.delete(bob, "second")
    await tick()
    assert [c["id"] for c in room.document.cells()] == [first]
    assert room.cells.undo(bob) == "second"  # bob's, not ann's
    assert room.cells.undo(ann) == first
    assert room.cells.undo(ann) is None
    await tick()
    assert room.document.cells() == before
    assert [c.to_py() for c in hana.doc.get("cells", type=Array)] == before
    in_step(room)
