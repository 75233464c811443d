"""Fakes for driving a room directly: a store that keeps what it is handed, JSON and Yjs
peers that keep what they are sent (a Yjs peer with a pycrdt document of its own)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from pycrdt import (
    Array,
    Doc,
    Map,
    Text,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

from kernelpad.sessions.events import Event
from kernelpad.sessions.models import Participant
from kernelpad.sessions.room.room import Room


class FakeStore:
    """What the room hands to storage, in order."""

    def __init__(self) -> None:
        self.updates: list[tuple[bytes, str | None]] = []
        self.snapshots: list[bytes] = []
        self.codes: list[str] = []
        self.hold = False  # leave commits pending until commit()
        self.pending: list[asyncio.Future[None]] = []
        self.failing = False  # appends fail (a full disk, say) while this is true

    def _done(self) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def append_update(
        self, session_id: str, data: bytes, at: float, author: str | None = None
    ) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        if self.failing:
            future.set_exception(sqlite3.OperationalError("database or disk is full"))
            return future
        self.updates.append((data, author))
        if not self.hold:
            return self._done()
        self.pending.append(future)
        return future

    def commit(self) -> None:
        for future in self.pending:
            future.set_result(None)
        self.pending.clear()

    def save_snapshot(self, session_id: str, state: bytes, at: float) -> asyncio.Future[None]:
        self.snapshots.append(state)
        return self._done()

    def set_code(self, session_id: str, code: str) -> asyncio.Future[None]:
        self.codes.append(code)
        return self._done()


@dataclass(eq=False)
class FakeJson:
    client_id: str
    role: str = "candidate"
    display_name: str = "Cleo"
    events: list[Event] = field(default_factory=list)
    closed: tuple[int | None, str | None] | None = None

    def send_event(self, event: Event) -> None:
        self.events.append(event)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed = (code, reason)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event.data for event in self.events if event.type == kind]


@dataclass(eq=False)
class FakeYjs:
    """A Yjs client: a pycrdt document of its own, kept in step with what it is sent."""

    client_id: str
    role: str = "candidate"
    doc: Doc[Any] = field(default_factory=Doc)
    sent: list[bytes] = field(default_factory=list)
    closed: tuple[int | None, str | None] | None = None

    def send_bytes(self, message: bytes) -> None:
        self.sent.append(message)
        if message[0] == YMessageType.SYNC:
            handle_sync_message(message[1:], self.doc)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed = (code, reason)

    def edit(self, text: str) -> bytes:
        """Append ``text`` to the first cell's source; the update message it makes."""
        updates: list[bytes] = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        cell = self.doc.get("cells", type=Array)[0]
        assert isinstance(cell, Map)
        source = cell["source"]
        assert isinstance(source, Text)
        source += text
        self.doc.unobserve(subscription)
        return create_update_message(updates[0])


async def tick() -> None:
    """Let the room's call_soon work run: the commit's callback, the delivery, the code
    check."""
    for _ in range(4):
        await asyncio.sleep(0)


def person(client_id: str, role: str = "candidate") -> Participant:
    return Participant(client_id, client_id.title(), role, 0.0)


def source_of(doc: Doc[Any]) -> str:
    cell = doc.get("cells", type=Array)[0]
    return str(cell["source"])


async def synced(room: Room, peer: FakeYjs) -> FakeYjs:
    room.add_yjs_peer(peer)
    peer.send_bytes(room.yjs.receive(peer, create_sync_message(peer.doc)) or b"")
    return peer
