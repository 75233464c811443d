"""The session's notebook document: whole texts applied as changes, in any script, and cells
moved with their outputs. pycrdt only, milliseconds a test."""

from __future__ import annotations

import pytest

from kernelpad.sessions.document import SessionDocument

TEXTS = [
    'print("héllo")\n',
    'print("héllo")\nx = 1\n',
    'print("hé😀llo")\nx = 1\n',
    "😀",
    "a😀b😀c",
    "a😀c",
    "名前 = 'テスト'\nprint(名前)\n",
    "",
    "\u202e\u200d x\n",
]


@pytest.mark.parametrize("start", TEXTS)
def test_whole_texts_in_any_script_are_applied_exactly(start: str) -> None:
    """pycrdt counts a text's offsets in UTF-8 bytes: a change placed by characters would
    land inside a character, scrambling the text (or crash, for a deletion)."""
    document = SessionDocument.create(start, "python")
    base = start
    for text in TEXTS:
        document.replace_code(text, base=base)
        assert document.code == text
        assert SessionDocument("python", [document.state()]).code == text
        base = text


def test_a_moved_cell_keeps_its_outputs_count_and_state() -> None:
    document = SessionDocument.create("print(1)\n", "python")
    first = document.cells()[0]["id"]
    document.notebook.append_cell(
        {"id": "md", "cell_type": "markdown", "source": "# x", "metadata": {}}
    )
    document.begin_run(first)
    document.append_outputs(first, [{"output_type": "stream", "name": "stdout", "text": "1\n"}])
    before = document.cells()[0]
    assert document.move_cell(first, 1) == 0  # where it came from
    assert [c["id"] for c in document.cells()] == ["md", first]
    assert document.cells()[1] == before  # outputs, count and "running" state too
    assert document.move_cell(first, 0) == 1 and document.cells()[0] == before
    assert document.move_cell("nope", 0) is None
    # Deleted and brought back, as it was.
    position, value = document.delete_cell(first) or (None, {})
    assert position == 0 and [c["id"] for c in document.cells()] == ["md"]
    document.insert_cell(position, value)
    assert document.cells()[0] == before
    assert SessionDocument("python", [document.state()]).cells() == document.cells()
