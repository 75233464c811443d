"""A session's room: its shared document and the people connected to it.

Two kinds of connection share one document: Yjs clients (the y-websocket protocol: sync steps,
updates, awareness) and clients of the original JSON protocol (``code_update`` with the whole
text, applied as a minimal diff). Every change to the document, whoever made it, is stored and
sent to everyone else in the form they speak.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycrdt import (
    Awareness,
    YMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)

from kernelpad.sessions.document import SessionDocument, changed_span
from kernelpad.sessions.store import SessionStore

log = logging.getLogger(__name__)

# Versions of the text remembered per JSON peer, to find what its next whole text is based on.
SEEN_VERSIONS = 8


class YjsPeer(Protocol):
    def send_bytes(self, message: bytes) -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class JsonPeer(Protocol):
    @property
    def client_id(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def role(self) -> str: ...

    def send_json(self, kind: str, data: dict[str, Any]) -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


@dataclass(eq=False)
class Room:
    """The live state of one session's collaboration."""

    session_id: str
    document: SessionDocument
    store: SessionStore
    yjs_peers: set[YjsPeer] = field(default_factory=set)
    json_peers: set[JsonPeer] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._origin: object | None = None  # the peer whose change is being applied
        # Who is where (names, colours, cursors): the clients' awareness states, kept so that
        # one who joins sees the others at once, and one who leaves disappears for the rest.
        self.awareness = Awareness(self.document.ydoc)
        self.awareness.set_local_state(None)
        self._owned: dict[object, set[int]] = collections.defaultdict(set)
        # The texts each JSON peer was last sent or sent itself: its next whole text is a
        # change from one of them (it may not have read the latest yet).
        self.seen: dict[object, collections.deque[str]] = {}
        # Open input requests, oldest first, with the run each belongs to.
        self._inputs: collections.deque[tuple[asyncio.Future[str | None], str]] = (
            collections.deque()
        )
        self._code = self.document.code
        self._subscription = self.document.observe(self._changed)

    # Yjs

    def greeting(self) -> list[bytes]:
        """The messages that open a Yjs connection: the server's state vector, and who is
        here."""
        messages = [create_sync_message(self.document.ydoc)]
        present = [cid for cid in self.awareness.states if cid != self.awareness.client_id]
        if present:
            messages.append(
                create_awareness_message(self.awareness.encode_awareness_update(present))
            )
        return messages

    def remove_yjs_peer(self, peer: YjsPeer) -> None:
        """A Yjs connection closed: its clients' awareness states go, for everyone."""
        self.yjs_peers.discard(peer)
        owned = [cid for cid in self._owned.pop(peer, set()) if cid in self.awareness.states]
        if owned:
            self.awareness.remove_awareness_states(owned, None)
            gone = create_awareness_message(self.awareness.encode_awareness_update(owned))
            for other in list(self.yjs_peers):
                other.send_bytes(gone)

    def receive_yjs(self, peer: YjsPeer, message: bytes) -> bytes | None:
        """Handle a Yjs message of ``peer``; return the reply to send it, if any.

        Raises ``ValueError`` for a message that is not valid Yjs.
        """
        if not message:
            raise ValueError("empty message")
        kind = message[0]
        if kind == YMessageType.SYNC:
            self._origin = peer
            try:
                return handle_sync_message(message[1:], self.document.ydoc)
            except Exception as exc:
                raise ValueError(f"invalid Yjs sync message: {exc}") from exc
            finally:
                self._origin = None
        if kind == YMessageType.AWARENESS:
            try:
                update = read_message(message[1:])
                before = set(self.awareness.states)
                self.awareness.apply_awareness_update(update, peer)
            except Exception as exc:
                raise ValueError(f"invalid awareness message: {exc}") from exc
            self._owned[peer].update(set(self.awareness.states) - before)
            for other in list(self.yjs_peers):
                if other is not peer:
                    other.send_bytes(message)
            return None
        # y-websocket's other types (auth, awareness queries) ask nothing of this server.
        return None

    # JSON

    def add_json_peer(self, peer: JsonPeer) -> None:
        self.json_peers.add(peer)
        self.seen[peer] = collections.deque([self.document.code], maxlen=SEEN_VERSIONS)

    def remove_json_peer(self, peer: JsonPeer) -> None:
        self.json_peers.discard(peer)
        self.seen.pop(peer, None)

    def replace_code(self, peer: JsonPeer, code: str) -> None:
        """Apply a JSON peer's whole text, as a change from the version it most likely wrote
        on (of those it had: the closest to its new text)."""
        versions = self.seen.setdefault(peer, collections.deque(maxlen=SEEN_VERSIONS))
        # The closest by what they share at both ends (linear); the most recent among equals,
        # so that typing a character and deleting it again is seen as the deletion.
        ranked = [(_shared(text, code), index) for index, text in enumerate(versions)]
        base = versions[max(ranked)[1]] if ranked else None
        self._origin = peer
        try:
            self.document.replace_code(code, base=base)
        finally:
            self._origin = None
        versions.append(code)

    def broadcast_json(self, kind: str, data: dict[str, Any], but: object | None = None) -> None:
        for peer in list(self.json_peers):
            if peer is not but:
                peer.send_json(kind, data)

    # Runs

    def start_run(self, execution_id: str, cell_id: str | None, language: str, code: str) -> Run:
        """A run that everyone will watch: it tells them when it starts and what it prints."""
        data = {"execution_id": execution_id, "cell_id": cell_id, "language": language}
        return Run(self, data, code)

    def finish_run(self, run: Run, outcome: dict[str, Any], outputs: list[dict[str, Any]]) -> None:
        """Tell everyone how a run ended; a cell's run leaves its outputs in the document."""
        self.broadcast_json("execution_finished", {**run.data, **outcome})
        language = run.data["language"]
        if outcome.get("status") == "kernel_died":
            self.broadcast_json("kernel_status", {"language": language, "state": "dead"})
        if outcome.get("kernel_restarted"):
            self.broadcast_json("kernel_status", {"language": language, "state": "restarting"})
        self.broadcast_json("kernel_status", {"language": language, "state": "idle"})
        cell_id = run.data["cell_id"]
        if cell_id is not None:
            self.document.set_outputs(cell_id, outputs, outcome.get("execution_count"))

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection (the session has ended)."""
        for yjs in list(self.yjs_peers):
            yjs.close(code, reason)
        for peer in list(self.json_peers):
            peer.close(code, reason)

    def answer_input(self, value: str, execution_id: str | None = None) -> bool:
        """Answer the open input request of the run ``execution_id`` (default: the oldest);
        whether there was one."""
        for future, run_id in list(self._inputs):
            if future.done():
                self._inputs.remove((future, run_id))
            elif execution_id is None or run_id == execution_id:
                self._inputs.remove((future, run_id))
                future.set_result(value)
                return True
        return False

    # Every change

    def _changed(self, update: bytes) -> None:
        origin = self._origin
        stored = self.store.append_update(self.session_id, update, time.time())
        stored.add_done_callback(self._log_failure)
        message = create_update_message(update)
        for peer in list(self.yjs_peers):
            if peer is not origin:
                peer.send_bytes(message)
        # The document may not be read inside its transaction: look at the code right after.
        asyncio.get_running_loop().call_soon(self._code_may_have_changed, origin)

    def _code_may_have_changed(self, origin: object | None) -> None:
        code = self.document.code
        if code == self._code:
            return
        self._code = code
        self.store.set_code(self.session_id, code).add_done_callback(self._log_failure)
        author = origin if origin in self.json_peers else None
        update = {
            "client_id": getattr(author, "client_id", None),
            "display_name": getattr(author, "display_name", None),
            "code": code,
            "language": self.document.language,
        }
        for peer in list(self.json_peers):
            # The author too, if others' edits were merged into what it sent.
            versions = self.seen.setdefault(peer, collections.deque(maxlen=SEEN_VERSIONS))
            if not versions or versions[-1] != code:
                versions.append(code)
                peer.send_json("code_update", update)

    def _log_failure(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error(
                "session %s: storing a document change failed",
                self.session_id,
                exc_info=future.exception(),
            )


@dataclass(eq=False)
class Run:
    """A run as the participants see it: its outputs and input requests, as they come."""

    room: Room
    data: dict[str, Any]
    code: str

    def started(self) -> None:
        self.room.broadcast_json(
            "kernel_status", {"language": self.data["language"], "state": "busy"}
        )
        self.room.broadcast_json("execution_started", {**self.data, "code": self.code})

    def output(self, output: dict[str, Any]) -> None:
        self.room.broadcast_json("output", {**self.data, "output": output})

    async def input(self, prompt: str, password: bool) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        entry = (future, str(self.data["execution_id"]))
        self.room._inputs.append(entry)
        request = {**self.data, "prompt": prompt, "password": password}
        self.room.broadcast_json("input_request", request)
        try:
            return await future
        finally:
            if entry in self.room._inputs:
                self.room._inputs.remove(entry)


def _shared(a: str, b: str) -> int:
    """How many characters ``a`` and ``b`` share at their beginning and end together."""
    start, a_end, _ = changed_span(a, b)
    return start + (len(a) - a_end)


class Rooms:
    """The rooms of the sessions someone is connected to, loaded from storage on demand."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self._rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    async def get(self, session_id: str, code: str, language: str) -> Room:
        """The room of a session, its document rebuilt from what is stored (or created from
        the session's code the first time)."""
        if session_id in self._rooms:
            return self._rooms[session_id]
        lock = self._loading.setdefault(session_id, asyncio.Lock())
        async with lock:
            if session_id not in self._rooms:
                updates = await self.store.load_updates(session_id)
                if updates:
                    document = SessionDocument(language, updates)
                else:
                    document = SessionDocument.create(code, language)
                    await self.store.append_update(session_id, document.state(), time.time())
                self._rooms[session_id] = Room(session_id, document, self.store)
        return self._rooms[session_id]

    def loaded(self, session_id: str) -> Room | None:
        """The room of a session if someone has it open."""
        return self._rooms.get(session_id)

    def release(self, room: Room) -> None:
        """Unload a room nobody is connected to (its document is stored; the next connection
        loads it again)."""
        if not room.yjs_peers and not room.json_peers and self._rooms.get(room.session_id) is room:
            del self._rooms[room.session_id]
            self._loading.pop(room.session_id, None)

    def close_all(self, code: int, reason: str) -> None:
        """Close every room and connection (the server is stopping)."""
        for session_id in list(self._rooms):
            self.close(session_id, code, reason)

    def close(self, session_id: str, code: int, reason: str) -> None:
        """Close a session's room and every connection to it."""
        room = self._rooms.pop(session_id, None)
        if room is not None:
            room.close_all(code, reason)
