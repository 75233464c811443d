"""A session's room: its shared document and the people connected to it.

Two kinds of connection share one document: Yjs clients (the y-websocket protocol: sync steps,
updates, awareness) and clients of the original JSON protocol (``code_update`` with the whole
text, applied as a minimal diff). Every change to the document, whoever made it, is stored and
sent to everyone else in the form they speak. Both kinds are participants: counted against the
session's limit, listed, announced to the others when they come and go.
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
    Decoder,
    YMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)

from kernelpad.errors import ParticipantRemoved, SessionEnded, SessionFull
from kernelpad.sessions.document import SessionDocument, changed_span
from kernelpad.sessions.models import Participant, Session
from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)

# y-websocket's sync message types: step 1 (a state vector) asks; the others change the document.
SYNC_STEP1 = 0
# Close code for the connections of a participant the host removed.
REMOVED = 4403

# Versions of the text remembered per JSON peer, to find what its next whole text is based on
# when it does not say (clients of the original protocol send no base_version).
SEEN_VERSIONS = 8
# Numbered versions of the text kept, for code_update's base_version.
KEPT_VERSIONS = 64
# A run's outputs reach the document in batches, at most this often (seconds): a run that
# prints in a tight loop must not become thousands of stored updates.
OUTPUT_BATCH_DELAY = 0.05
# Stored updates of a live document folded into one after this many new ones.
COMPACT_AFTER = 2000
# How long the session's ``code`` column may lag behind the document (seconds): the REST API
# reads a live room's document itself, the column is for sessions nobody has open.
CODE_SAVE_DELAY = 1.0


class YjsPeer(Protocol):
    @property
    def client_id(self) -> str: ...

    @property
    def role(self) -> str: ...

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


@dataclass
class _Member:
    """A participant and how many connections it has open (tabs, or a Yjs and a JSON one)."""

    participant: Participant
    connections: int = 0


@dataclass(eq=False)
class _InputRequest:
    """A run waiting for a line: the answer to come, and the request as it was sent."""

    answer: asyncio.Future[str | None]
    request: dict[str, Any]

    @property
    def execution_id(self) -> str:
        return str(self.request["execution_id"])


@dataclass
class _PeerView:
    """What a JSON peer has of the text: the last texts it was sent or sent itself, and the
    version it was last told; ``numbered`` once it names versions (then every version reaches
    it, even one whose text it already has, so it always knows what to base on)."""

    texts: collections.deque[str]
    version: int
    numbered: bool = False


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
        self._owned: dict[YjsPeer, set[int]] = collections.defaultdict(set)
        self.members: dict[str, _Member] = {}
        self.views: dict[object, _PeerView] = {}
        # The code's numbered versions, newest last (numbers start again with each load).
        # Numbers start from the time of the load, so that a version named from an earlier load
        # of the document is not mistaken for one of this load.
        self.version = int(time.time() * 1000)
        self.versions: collections.deque[tuple[int, str]] = collections.deque(
            [(self.version, self.document.code)], maxlen=KEPT_VERSIONS
        )
        # Open input requests, oldest first, with the run each belongs to.
        self.inputs: collections.deque[_InputRequest] = collections.deque()
        self._code = self.document.code
        # Connections and runs using the room: it stays loaded while any does.
        self.holds = 0
        self.closed = False
        self.removed: set[str] = set()  # client ids the host removed while the room was open
        # The host's rules (see Manager.update_settings).
        self.editing_locked = False
        self.candidate_execution = True
        self._code_saver: asyncio.TimerHandle | None = None
        self._since_compaction = 0
        self._code_check: asyncio.Handle | None = None
        self._code_origin: object | None = None
        self._subscription = self.document.observe(self._changed)

    # Participants

    def admit(self, participant: Participant, limit: int) -> None:
        """Count a connection of ``participant``, within ``limit`` participants at a time (a
        participant who is already here may open more connections). Checking and counting in
        one step, with no wait between, is what keeps simultaneous joins within the limit."""
        if self.closed:
            raise SessionEnded(f"Session {self.session_id} has ended.")
        if participant.client_id in self.removed:
            raise ParticipantRemoved(
                f"Session {self.session_id}: {participant.client_id} was removed by the host."
            )
        member = self.members.get(participant.client_id)
        if member is None:
            if len(self.members) >= limit:
                raise SessionFull(
                    f"Session {self.session_id} is full: it allows {limit} participants at a time."
                )
            member = self.members[participant.client_id] = _Member(participant)
            self.broadcast_json("participant_joined", self._presence(participant))
        member.participant = participant
        member.connections += 1

    def depart(self, client_id: str) -> Participant | None:
        """One connection of ``client_id`` closed; the participant, if it was its last."""
        member = self.members.get(client_id)
        if member is None:
            return None
        member.connections -= 1
        if member.connections > 0:
            return None
        del self.members[client_id]
        self.broadcast_json("participant_left", self._presence(member.participant))
        return member.participant

    def participants(self) -> list[dict[str, Any]]:
        """Who is connected now."""
        return [
            {
                "client_id": m.participant.client_id,
                "display_name": m.participant.display_name,
                "role": m.participant.role,
                "connected": True,
            }
            for m in self.members.values()
        ]

    def _presence(self, participant: Participant) -> dict[str, Any]:
        return {
            "client_id": participant.client_id,
            "display_name": participant.display_name,
            "role": participant.role,
            "participant_count": len(self.members),
        }

    def set_rules(self, editing_locked: bool, candidate_execution: bool) -> None:
        """The host changed the rules: everyone is told."""
        self.editing_locked, self.candidate_execution = editing_locked, candidate_execution
        self.broadcast_json("session_settings", self.rules())

    def rules(self) -> dict[str, bool]:
        return {
            "editing_locked": self.editing_locked,
            "candidate_execution": self.candidate_execution,
        }

    def may_edit(self, peer: object) -> bool:
        return not self.editing_locked or getattr(peer, "role", "") == "host"

    def expel(self, client_id: str, reason: str) -> None:
        """Close every connection of ``client_id`` (the host removed it)."""
        for peer in list(self.json_peers):
            if peer.client_id == client_id:
                peer.send_json("error", {"code": "removed", "message": reason})
                peer.close(REMOVED, reason[:120])
        for yjs in list(self.yjs_peers):
            if yjs.client_id == client_id:
                yjs.close(REMOVED, reason[:120])

    @property
    def code(self) -> str:
        """The code (the first code cell's source) as of :attr:`version`."""
        return self._code

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

    def _owner_of(self, awareness_id: int, peer: YjsPeer) -> YjsPeer | None:
        """The connection of another participant that owns ``awareness_id``, if any (a
        participant's other connection, say a reloaded tab, may take it over)."""
        for other, owned in self._owned.items():
            if other is not peer and awareness_id in owned and other.client_id != peer.client_id:
                return other
        return None

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
            if len(message) > 1 and message[1] != SYNC_STEP1 and not self.may_edit(peer):
                # Editing is locked: a candidate's changes are not taken (its editor is
                # read-only; a client that sends them anyway only changes its own copy).
                return None
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
                ids = _awareness_ids(update)
            except Exception as exc:
                raise ValueError(f"invalid awareness message: {exc}") from exc
            if any(self._owner_of(cid, peer) for cid in ids):
                # Another participant's presence is theirs alone to change.
                return None
            try:
                before = dict(self.awareness.meta)
                self.awareness.apply_awareness_update(update, peer)
            except Exception as exc:
                raise ValueError(f"invalid awareness message: {exc}") from exc
            # The client ids this update changed belong to this connection now: a tab that
            # reconnects with its old client id before its old socket is reaped must not
            # vanish when the old socket's states are removed.
            claimed = {cid for cid, meta in self.awareness.meta.items() if before.get(cid) != meta}
            for other, owned in self._owned.items():
                if other is not peer:
                    owned -= claimed
            self._owned[peer] |= claimed
            for other in list(self.yjs_peers):
                if other is not peer:
                    other.send_bytes(message)
            return None
        # y-websocket's other types (auth, awareness queries) ask nothing of this server.
        return None

    # JSON

    def add_json_peer(self, peer: JsonPeer) -> None:
        self.json_peers.add(peer)
        self.views[peer] = _PeerView(
            collections.deque([self._code], maxlen=SEEN_VERSIONS), self.version
        )

    def remove_json_peer(self, peer: JsonPeer) -> None:
        self.json_peers.discard(peer)
        self.views.pop(peer, None)

    def replace_code(self, peer: JsonPeer, code: str, base_version: int | None = None) -> None:
        """Apply a JSON peer's whole text, as a change from the version it names, or else the
        version it most likely wrote on (of those it had: the closest to its new text)."""
        view = self.views.setdefault(
            peer, _PeerView(collections.deque(maxlen=SEEN_VERSIONS), self.version)
        )
        base = None
        if base_version is not None:
            view.numbered = True
            base = next((text for n, text in self.versions if n == base_version), None)
        if base is None:
            # The closest by what they share at both ends (linear); the most recent among
            # equals, so that typing a character and deleting it again is seen as the deletion.
            ranked = [(_shared(text, code), index) for index, text in enumerate(view.texts)]
            base = view.texts[max(ranked)[1]] if ranked else None
        self._origin = peer
        try:
            self.document.replace_code(code, base=base)
        finally:
            self._origin = None
        view.texts.append(code)
        if self.document.code == self._code:
            # Nothing changed (the text was already there): still tell a peer that counts
            # versions which one it has.
            self._tell(peer, view, self._code_update(None))

    def broadcast_json(self, kind: str, data: dict[str, Any], but: object | None = None) -> None:
        for peer in list(self.json_peers):
            if peer is not but:
                peer.send_json(kind, data)

    # Runs

    def start_run(self, execution_id: str, cell_id: str | None, language: str, code: str) -> Run:
        """A run that everyone will watch: it tells them when it starts and what it prints."""
        data = {"execution_id": execution_id, "cell_id": cell_id, "language": language}
        return Run(self, data, code)

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection (the session has ended, or the server is stopping), and
        store what is pending. Nobody may join it any more."""
        self.closed = True
        self.settle()
        for yjs in list(self.yjs_peers):
            yjs.close(code, reason)
        for peer in list(self.json_peers):
            peer.close(code, reason)

    def answer_input(self, value: str, execution_id: str | None = None) -> bool:
        """Answer the open input request of the run ``execution_id`` (default: the oldest);
        whether there was one."""
        for entry in list(self.inputs):
            if entry.answer.done():
                self.inputs.remove(entry)
            elif execution_id is None or entry.execution_id == execution_id:
                self.inputs.remove(entry)
                entry.answer.set_result(value)
                # Everyone else's input box for it can go.
                self.broadcast_json("input_answered", {"execution_id": entry.execution_id})
                return True
        return False

    def open_inputs(self) -> list[dict[str, Any]]:
        """The input requests waiting for an answer, oldest first (for who joins now)."""
        return [entry.request for entry in self.inputs if not entry.answer.done()]

    # Every change

    def _changed(self, update: bytes) -> None:
        origin = self._origin
        try:
            author = getattr(origin, "client_id", None)
            stored = self.store.append_update(self.session_id, update, time.time(), author)
        except RuntimeError:
            # The store has closed (the server is stopping): only a run's last output can
            # still come this late.
            log.warning("session %s: a change came after storage closed", self.session_id)
        else:
            stored.add_done_callback(self._log_failure)
        self._since_compaction += 1
        if self._since_compaction >= COMPACT_AFTER:
            asyncio.get_running_loop().call_soon(self.compact)
        message = create_update_message(update)
        for peer in list(self.yjs_peers):
            if peer is not origin:
                peer.send_bytes(message)
        # The document may not be read inside its transaction: look at the code right after,
        # once for every change made meanwhile (under load, a burst read at once); the
        # author is named only if all of them are one peer's.
        if self._code_check is None:
            self._code_check = asyncio.get_running_loop().call_soon(self._check_code)
            self._code_origin = origin
        elif self._code_origin is not origin:
            self._code_origin = None

    def compact(self) -> None:
        """Store the document as it is now, in one piece, for the next load to start from
        (every change stays in the record too). Queued behind every update stored so far,
        and before any later one, so nothing is lost."""
        self._since_compaction = 0
        done = self.store.save_snapshot(self.session_id, self.document.state(), time.time())
        done.add_done_callback(self._log_failure)

    def _check_code(self) -> None:
        origin, self._code_origin, self._code_check = self._code_origin, None, None
        self._code_may_have_changed(origin)

    def _code_may_have_changed(self, origin: object | None) -> None:
        code = self.document.code
        if code == self._code:
            return
        self._code = code
        self.version += 1
        self.versions.append((self.version, code))
        if self._code_saver is None:
            loop = asyncio.get_running_loop()
            self._code_saver = loop.call_later(CODE_SAVE_DELAY, self.save_code)
        author = origin if origin in self.json_peers else None
        update = self._code_update(author)
        for peer in list(self.json_peers):
            view = self.views.setdefault(
                peer, _PeerView(collections.deque(maxlen=SEEN_VERSIONS), -1)
            )
            self._tell(peer, view, update)

    def _code_update(self, author: JsonPeer | None) -> dict[str, Any]:
        return {
            "client_id": getattr(author, "client_id", None),
            "display_name": getattr(author, "display_name", None),
            "code": self._code,
            "language": self.document.language,
            "version": self.version,
        }

    def _tell(self, peer: JsonPeer, view: _PeerView, update: dict[str, Any]) -> None:
        """Send ``peer`` the current code if it lacks it (the author too, if others' edits
        were merged into what it sent), or, if it counts versions, the current version."""
        if view.version == self.version:
            return
        view.version = self.version
        if not view.texts or view.texts[-1] != self._code:
            view.texts.append(self._code)
        elif not view.numbered:
            return
        peer.send_json("code_update", update)

    def save_code(self, force: bool = False) -> None:
        """Store the session's code (its first code cell) for the REST API, if it changed
        since it was last stored (or ``force``)."""
        if self._code_saver is not None:
            self._code_saver.cancel()
            self._code_saver = None
            force = True
        if force:
            saved = self.store.set_code(self.session_id, self._code)
            saved.add_done_callback(self._log_failure)

    def settle(self) -> None:
        """Store what is pending (the code, the document in one piece): nobody is here."""
        self.save_code()
        if self._since_compaction:
            self.compact()

    def _log_failure(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error(
                "session %s: storing a document change failed",
                self.session_id,
                exc_info=future.exception(),
            )


@dataclass(eq=False)
class Run:
    """A run as the participants see it: its outputs and input requests, as they come. A
    cell's run also writes its outputs into the cell, in batches, for Yjs-only clients."""

    room: Room
    data: dict[str, Any]
    code: str
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _flush: asyncio.TimerHandle | None = None
    finished: bool = False

    @property
    def cell_id(self) -> str | None:
        cell_id = self.data["cell_id"]
        return cell_id if isinstance(cell_id, str) else None

    def started(self) -> None:
        self.room.broadcast_json(
            "kernel_status", {"language": self.data["language"], "state": "busy"}
        )
        self.room.broadcast_json("execution_started", {**self.data, "code": self.code})
        if self.cell_id is not None:
            self.room.document.begin_run(self.cell_id)

    def output(self, output: dict[str, Any]) -> None:
        self.room.broadcast_json("output", {**self.data, "output": output})
        if self.cell_id is None:
            return
        self._pending.append(output)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(
                OUTPUT_BATCH_DELAY, self._write_outputs
            )

    def _write_outputs(self) -> None:
        self._flush = None
        pending, self._pending = self._pending, []
        if pending and self.cell_id is not None:
            self.room.document.append_outputs(self.cell_id, pending)

    def finish(self, outcome: dict[str, Any]) -> None:
        """Tell everyone how the run ended; a cell's run leaves its count in the document."""
        if self.finished:
            return
        self.finished = True
        if self._flush is not None:
            self._flush.cancel()
        self._write_outputs()
        room, language = self.room, self.data["language"]
        room.broadcast_json("execution_finished", {**self.data, **outcome})
        if outcome.get("status") == "kernel_died":
            room.broadcast_json("kernel_status", {"language": language, "state": "dead"})
        if outcome.get("kernel_restarted"):
            room.broadcast_json("kernel_status", {"language": language, "state": "restarting"})
        room.broadcast_json("kernel_status", {"language": language, "state": "idle"})
        if self.cell_id is not None:
            room.document.end_run(self.cell_id, outcome.get("execution_count"))

    async def input(self, prompt: str, password: bool) -> str | None:
        request = {**self.data, "prompt": prompt, "password": password}
        entry = _InputRequest(asyncio.get_running_loop().create_future(), request)
        self.room.inputs.append(entry)
        self.room.broadcast_json("input_request", request)
        try:
            return await entry.answer
        finally:
            if entry in self.room.inputs:
                self.room.inputs.remove(entry)


def _awareness_ids(update: bytes) -> list[int]:
    """The client ids an awareness update speaks for (y-protocols' encoding: a count, then
    for each an id, a clock and a JSON state)."""
    decoder = Decoder(update)
    ids = []
    for _ in range(decoder.read_var_uint()):
        ids.append(decoder.read_var_uint())
        decoder.read_var_uint()
        decoder.read_var_string()
    return ids


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

    async def get(self, session: Session) -> Room:
        """The room of a session, its document rebuilt from what is stored (or created from
        the session's code the first time); the caller owes :meth:`release`."""
        session_id, code, language = session.id, session.code, session.language
        lock = self._loading.setdefault(session_id, asyncio.Lock())
        async with lock:
            if session_id not in self._rooms:
                updates = await self.store.load_updates(session_id)
                if updates:
                    document = SessionDocument(language, updates)
                else:
                    document = SessionDocument.create(code, language)
                    await self.store.append_update(session_id, document.state(), time.time())
                room = Room(session_id, document, self.store)
                room.editing_locked = session.editing_locked
                room.candidate_execution = session.candidate_execution
                # A run the server did not see end (it stopped mid-run) is not running now.
                document.reset_running()
                if len(updates) > 1:
                    room.compact()
                if document.code != code:
                    # The code column lagged behind the document when the server stopped.
                    room.save_code(force=True)
                self._rooms[session_id] = room
        room = self._rooms[session_id]
        room.holds += 1
        return room

    def hold(self, room: Room) -> None:
        """Keep ``room`` loaded until the matching :meth:`release`."""
        room.holds += 1

    def loaded(self, session_id: str) -> Room | None:
        """The room of a session if someone has it open."""
        return self._rooms.get(session_id)

    def participants_connected(self) -> int:
        """Participants with a connection open, over every room."""
        return sum(len(room.members) for room in self._rooms.values())

    def release(self, room: Room) -> None:
        """Let go of a room from :meth:`get` or :meth:`hold`; the last to let go unloads it
        (its document is stored, in one piece; the next connection loads it again)."""
        room.holds -= 1
        if room.holds <= 0 and self._rooms.get(room.session_id) is room:
            del self._rooms[room.session_id]
            self._loading.pop(room.session_id, None)
            room.settle()

    def close_all(self, code: int, reason: str) -> None:
        """Close every room and connection (the server is stopping)."""
        for session_id in list(self._rooms):
            self.close(session_id, code, reason)

    def close(self, session_id: str, code: int, reason: str) -> None:
        """Close a session's room and every connection to it."""
        room = self._rooms.pop(session_id, None)
        self._loading.pop(session_id, None)
        if room is not None:
            room.close_all(code, reason)
