"""One colour per participant of an interview: their dot in the list, their cursor in the code,
their edits in the replay. Given by the order they joined (the host first), so that nobody in
an interview has another's colour (up to as many as there are colours), and every page shows
the same. Chosen to read on the light and the dark theme alike."""

from __future__ import annotations

COLOURS = (
    "#d1242f",  # red
    "#0969da",  # blue
    "#1a7f37",  # green
    "#8250df",  # purple
    "#bc4c00",  # orange
    "#bf3989",  # pink
    "#0a7e8c",  # teal
    "#7d4e00",  # brown
    "#6639ba",  # violet
    "#cf222e",  # crimson
    "#116329",  # forest
    "#1b7c83",  # cyan
)


def colour_at(position: int) -> str:
    """The colour of the participant who joined ``position``-th (0: the host)."""
    return COLOURS[position % len(COLOURS)]
