"""Reading a Yjs update without applying it (kernelpad/sessions/room/yjs_update.py), checked
against what the real libraries do: updates made by Yjs itself (Node.js) of every content kind,
and pycrdt documents applying random edits in random orders, where the reader's prediction of
what is held back must match what pycrdt integrates."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text

from kernelpad.sessions.room.yjs_update import (
    MalformedUpdate,
    held_back,
    read_state_vector,
    read_update,
    sync_update,
)

FRONTEND = Path(__file__).parents[2] / "kernelpad" / "web" / "frontend"

# Every content kind Yjs writes: strings (with characters outside the BMP, counted in UTF-16),
# formats, embeds, nested maps, arrays and texts, JSON-like values of every lib0 type, XML
# elements and texts, deletions, and one transaction touching several types.
YJS_SCRIPT = """
import * as Y from "yjs";
const doc = new Y.Doc();
const updates = [];
doc.on("update", (u) => updates.push(Buffer.from(u).toString("hex")));
const cells = doc.getArray("cells");
const cell = new Y.Map();
cell.set("id", "abc");
cell.set("source", new Y.Text("print('hé 😀')"));
const md = new Y.Map();
md.set("kernelpad", { language: "python", n: 3.5, big: 12345678901, neg: -5,
  arr: [1, null, true, "x", { deep: [false] }], bytes: new Uint8Array([1, 2]) });
cell.set("metadata", md);
cell.set("outputs", new Y.Array());
cell.set("execution_count", null);
cells.insert(0, [cell]);
const source = cell.get("source");
source.insert(3, "xyz😀");
source.delete(0, 2);
source.format(0, 2, { bold: true });
source.insertEmbed(1, { image: "a" });
cells.insert(1, [1, "two", { three: 3 }, new Uint8Array([9])]);
cells.delete(1, 2);
const xml = doc.getXmlFragment("meta");
xml.insert(0, [new Y.XmlElement("p"), new Y.XmlText("t")]);
doc.getMap("state").set("dirty", false);
doc.transact(() => { source.insert(0, "A"); source.insert(10, "B"); cells.insert(2, ["z"]); });
const whole = Buffer.from(Y.encodeStateAsUpdate(doc)).toString("hex");
console.log(JSON.stringify({ updates, whole }));
"""


def yjs_updates() -> tuple[list[bytes], bytes]:
    done = subprocess.run(
        ["node", "--input-type=module"],
        input=YJS_SCRIPT,
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    made = json.loads(done.stdout)
    return [bytes.fromhex(u) for u in made["updates"]], bytes.fromhex(made["whole"])


def clocks(doc: Doc[Any]) -> dict[int, int]:
    return read_state_vector(doc.get_state())


def test_updates_made_by_yjs_are_read_as_pycrdt_integrates_them() -> None:
    updates, whole = yjs_updates()
    doc: Doc[Any] = Doc()
    for update in updates:
        shape = read_update(update)
        assert held_back(shape, clocks(doc)) is None
        doc.apply_update(update)
        for client, end in shape.ends().items():
            assert clocks(doc)[client] >= end
    assert read_update(whole).ends() == clocks(doc)
    assert read_update(whole).roots == {"cells", "meta", "state"}
    # Alone, on an empty document, each later update is held back: it builds on the first.
    for update in updates[1:]:
        assert held_back(read_update(update), {}) is not None


def random_edits(seed: int) -> list[bytes]:
    """The updates of 30 random edits of a pycrdt document."""
    rng = random.Random(seed)
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text, cells, meta = (
        doc.get("t", type=Text),
        doc.get("cells", type=Array),
        doc.get("m", type=Map),
    )
    for _ in range(30):
        roll, now = rng.random(), str(text)
        if roll < 0.4:
            # pycrdt counts a text's offsets in UTF-8 bytes.
            at = len(now[: rng.randint(0, len(now))].encode())
            text.insert(at, rng.choice(["a", "é", "😀x", "\u202e", "long text " * 5]))
        elif roll < 0.55 and len(now) > 2:
            i = rng.randint(0, len(now) - 2)
            del text[len(now[:i].encode()) : len(now[: i + 1].encode())]
        elif roll < 0.7:
            value = rng.choice([1, 2.5, None, True, "s", {"k": [1, {"z": None}]}, b"\x00"])
            cells.append(rng.choice([value, Map({"x": Text("q")}), Array([1, 2])]))
        elif roll < 0.8 and len(cells):
            del cells[rng.randint(0, len(cells) - 1)]
        else:
            meta[rng.choice("abc")] = rng.choice([1, "v", [1, 2], Map({"y": 1})])
    return updates


@pytest.mark.parametrize("seed", range(40))
def test_what_is_held_back_is_predicted_in_any_order(seed: int) -> None:
    """Updates applied in a random order: those read as integrating whole do (their structs
    are all in the document after), and those read as held back are (until something is held
    back, after which pycrdt may integrate it late, which the room never lets happen)."""
    updates = random_edits(seed)
    doc: Doc[Any] = Doc()
    order = updates[:]
    random.Random(seed).shuffle(order)
    for update in order:
        shape = read_update(update)
        why = held_back(shape, clocks(doc))
        doc.apply_update(update)
        integrated = all(clocks(doc).get(c, 0) >= end for c, end in shape.ends().items())
        if why is None:
            assert integrated
            continue
        if "deletes" not in why:  # a held-back deletion leaves the clocks as they are
            assert not integrated
        break
    in_order: Doc[Any] = Doc()
    for update in updates:
        assert held_back(read_update(update), clocks(in_order)) is None
        in_order.apply_update(update)


def test_a_sync_message_carries_its_update() -> None:
    update = random_edits(1)[0]
    message = bytes([2, len(update)]) + update if len(update) < 128 else None
    assert message is not None and sync_update(message) == update
    with pytest.raises(MalformedUpdate):
        sync_update(message + b"\x00")


def test_every_cut_of_an_update_is_malformed() -> None:
    _, whole = yjs_updates()
    for end in range(len(whole)):
        with pytest.raises(MalformedUpdate):
            read_update(whole[:end])
    with pytest.raises(MalformedUpdate):
        read_update(whole + b"\x00")
