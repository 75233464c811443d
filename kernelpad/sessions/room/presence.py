"""What a presence (a Yjs awareness state) may hold before the server keeps it and passes it on.

A participant's presence reaches every other participant's page, and parts of it go straight
into that page: y-codemirror puts ``user.color`` and ``user.colorLight`` into a ``style``
attribute of the remote cursor and selection, and ``user.name`` beside the cursor. A colour of
``red; position: fixed; width: 100vw; ...`` would draw whatever its sender likes over the
interviewer's pad. So every presence is checked here first, and what does not fit is left out
of what the server keeps and relays; no other client ever receives it:

- a state is a JSON object (or null, for "gone") of at most ``MAX_STATE_BYTES``; a state that is
  not is left out whole;
- ``user`` is an object; ``user.color`` is ``#rrggbb``, ``user.colorLight`` ``#rrggbb`` or
  ``#rrggbbaa`` (the pad sends its colour with an alpha of ``33``); ``user.name`` follows the
  rule of every name (:func:`kernelpad.sessions.names.person_name`). A field that does not fit
  is left out; the rest of the state stays.

Other fields (``cursor``, and whatever a client adds) go as they came, within the size bound:
none of them goes into the page's markup (the page checks a cursor's shape itself before it
draws one: web/frontend/src/presence.js).

y-protocols' encoding of an awareness update: a count, then for each client its id, a clock and
its state as a JSON string (an empty string or ``null`` when it left).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pycrdt import Decoder, write_var_uint

from kernelpad.sessions.names import person_name

#: A presence is a name, two colours and a cursor: a few hundred bytes. The bound leaves room
#: for a client's own fields, and keeps what the server holds per client small.
MAX_STATE_BYTES = 8 * 1024

# What may go into a style attribute as a colour: hex digits only, nothing that ends the value.
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
LIGHT_COLOUR = re.compile(r"#[0-9a-fA-F]{6}(?:[0-9a-fA-F]{2})?")
COLOUR_FIELDS = {"color": COLOUR, "colorLight": LIGHT_COLOUR}

# How much of a refused value a log line shows.
SHOWN = 60

#: check_state's answer for a state that is left out whole.
REFUSED: Any = object()


@dataclass(frozen=True)
class Entry:
    """One client's part of an awareness update."""

    client: int
    clock: int
    state: str  # JSON text, as sent: "" or "null" when the client left


@dataclass(frozen=True)
class Checked:
    """An awareness update after the check: what may be kept and relayed (None if nothing
    is left of it), and what was left out, described for the log."""

    update: bytes | None
    dropped: tuple[str, ...] = ()


def decode(update: bytes) -> list[Entry]:
    """The entries of an awareness update. Raises ``ValueError`` if it is not one."""
    try:
        decoder = Decoder(update)
        entries = []
        for _ in range(decoder.read_var_uint()):
            client = decoder.read_var_uint()
            clock = decoder.read_var_uint()
            entries.append(Entry(client, clock, decoder.read_var_string()))
    except (RuntimeError, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an awareness update: {exc}") from exc
    return entries


def encode(entries: Sequence[Entry]) -> bytes:
    """An awareness update of ``entries``. (pycrdt's Encoder prefixes a string with its length
    in characters, not bytes, so it cannot carry a name like "Zoë"; this one counts bytes.)"""
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        state = entry.state.encode()
        parts += [write_var_uint(entry.client), write_var_uint(entry.clock)]
        parts += [write_var_uint(len(state)), state]
    return b"".join(parts)


def check_update(update: bytes) -> Checked:
    """``update`` with every state checked (see the module's docstring). Raises
    ``ValueError`` for what is not an awareness update, or holds a state that is not JSON."""
    entries = decode(update)
    kept: list[Entry] = []
    dropped: list[str] = []
    for entry in entries:
        if len(entry.state.encode()) > MAX_STATE_BYTES:
            dropped.append(f"{entry.client}: its state, over {MAX_STATE_BYTES} bytes")
            continue
        state = _parsed(entry)
        checked, left_out = check_state(state)
        dropped += [f"{entry.client}: {what}" for what in left_out]
        if checked is REFUSED:
            continue
        if checked is not state:
            text = json.dumps(checked, separators=(",", ":"), allow_nan=False)
            entry = replace(entry, state=text)
        kept.append(entry)
    if kept == entries:
        return Checked(update)
    return Checked(encode(kept) if kept else None, tuple(dropped))


def _parsed(entry: Entry) -> Any:
    # JSON as JavaScript reads it: NaN or Infinity would make every other client's
    # JSON.parse throw on the whole update.
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(entry.state, parse_constant=refuse) if entry.state else None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the state of {entry.client} is not JSON: {exc}") from exc


def check_state(state: Any) -> tuple[Any, list[str]]:
    """A decoded state and what was left out of it. The state comes back as it was (the same
    object) if all of it fits, a copy without what did not otherwise, or ``REFUSED``. A name
    comes back trimmed."""
    if state is None:
        return state, []
    if not isinstance(state, dict):
        return REFUSED, [f"the state {_shown(state)} (not an object)"]
    if "user" not in state:
        return state, []
    user, dropped = _check_user(state["user"])
    if user is state["user"]:
        return state, []
    checked = dict(state)
    if user is REFUSED:
        del checked["user"]
    else:
        checked["user"] = user
    return checked, dropped


def _check_user(user: Any) -> tuple[Any, list[str]]:
    if not isinstance(user, dict):
        return REFUSED, [f"user {_shown(user)} (not an object)"]
    checked = dict(user)
    dropped: list[str] = []
    for field, pattern in COLOUR_FIELDS.items():
        value = user.get(field)
        if field in user and not (isinstance(value, str) and pattern.fullmatch(value)):
            del checked[field]
            dropped.append(f"user.{field} {_shown(value)}")
    if "name" in user:
        try:
            if not isinstance(user["name"], str):
                raise ValueError("not text")
            checked["name"] = person_name(user["name"])
        except ValueError as exc:
            del checked["name"]
            dropped.append(f"user.name {_shown(user['name'])} ({exc})")
    return (user if checked == user else checked), dropped


def _shown(value: Any) -> str:
    """A refused value for the log: its repr (no line breaks), cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"
