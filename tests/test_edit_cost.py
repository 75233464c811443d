"""bench/edit_cost.py measures what it says: every variant is given every edit, ends with the
typists' text, and a room that did not is caught."""

from __future__ import annotations

import pytest

from tests.bench_scripts import bench_module

edit_cost = bench_module("edit_cost")


@pytest.mark.parametrize("variant", edit_cost.VARIANTS)
async def test_every_variant_takes_every_edit(variant: str) -> None:
    start, edits, texts = edit_cost.typed_edits(3, 8)
    assert all(len(room) == 8 for room in edits)
    assert all(text.count("#t0-") == 4 and text.count("#t1-") == 4 for text in texts)
    cost = await edit_cost.measure(variant, start, edits, texts, rate=2000.0)
    assert cost > 0


@pytest.mark.parametrize("variant", ["least", "unstored", "kernelpad"])
async def test_a_room_whose_text_differs_is_caught(variant: str) -> None:
    start, edits, texts = edit_cost.typed_edits(2, 4)
    with pytest.raises(RuntimeError, match="differs"):
        await edit_cost.measure(variant, start, edits, [texts[0], texts[0] + "x"], rate=2000.0)
