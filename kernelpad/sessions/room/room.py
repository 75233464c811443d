"""A session's room: its live document and the people connected to it.

Two kinds of connection share one document: Yjs clients (:mod:`.yjs`) and clients of the
original JSON protocol (:mod:`.text_sync`). Every change to the document, whoever made it, is
stored (:mod:`.persistence`) and sent to everyone else in the form they speak. Both kinds are
participants: counted against the session's limit, listed, announced to the others when they
come and go. Whether a participant may change the document, the room asks ``gate`` (the
session's rules, :mod:`kernelpad.sessions.access`); it keeps no rules of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from kernelpad.errors import (
    CellLocked,
    ChangeNotMerged,
    DocumentTooLarge,
    Forbidden,
    KernelpadError,
    ParticipantRemoved,
    SessionEnded,
    SessionFull,
)
from kernelpad.logs import about
from kernelpad.sessions.access import Action, DocumentLimits, check_document
from kernelpad.sessions.document import ROOTS, SessionDocument
from kernelpad.sessions.events import (
    ConnectedParticipant,
    Error,
    Event,
    ParticipantJoined,
    ParticipantLeft,
    SessionBrief,
)
from kernelpad.sessions.models import Participant
from kernelpad.sessions.room.cells import CellEdits
from kernelpad.sessions.room.guard import KernelFields
from kernelpad.sessions.room.persistence import DocumentLog
from kernelpad.sessions.room.refusal import SizeBound, apply_refusably, undo_manager
from kernelpad.sessions.room.relay import Relay
from kernelpad.sessions.room.text_sync import JsonPeer, TextSync
from kernelpad.sessions.room.watch import Inputs, Run
from kernelpad.sessions.room.yjs import YjsPeer, YjsSync
from kernelpad.sessions.room.yjs_update import (
    UpdateShape,
    advance,
    held_back,
    read_state_vector,
    read_update,
    sync_update,
)
from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)

# Close code for the connections of a participant the host removed.
REMOVED = 4403

#: ``gate(role, action)`` raises unless a participant of ``role`` may take ``action`` now.
Gate = Callable[[str, Action], None]


@dataclass
class _Member:
    """A participant and how many connections it has open (tabs, or a Yjs and a JSON one)."""

    participant: Participant
    connections: int = 0


class _Applying:
    """A block whose changes are a participant's (see :meth:`Room._applying`). A class, not a
    generator: it wraps every keystroke."""

    __slots__ = ("fields", "origin", "room")

    def __init__(self, room: Room, origin: object, fields: KernelFields | None) -> None:
        self.room, self.origin, self.fields = room, origin, fields

    def __enter__(self) -> None:
        self.room._origin = self.origin
        if self.fields is not None:
            self.fields.begin(getattr(self.origin, "role", None))

    def __exit__(self, *_: object) -> None:
        self.room._origin = None
        if self.fields is not None:
            self.fields.end()


class Room:
    """The live state of one session's collaboration."""

    def __init__(
        self,
        session_id: str,
        document: SessionDocument,
        store: SessionStore,
        gate: Gate,
        limits: DocumentLimits | None = None,
    ) -> None:
        self.session_id = session_id
        self.document = document
        #: The question beside the notebook, as the host last set it (told at every join).
        self.brief = SessionBrief(statement="")
        self.gate = gate
        self.limits = limits or DocumentLimits()
        self.size = SizeBound.of(document, self.limits)
        self._undo = undo_manager(document)  # for changes that may be taken back
        self._kernel_fields = KernelFields(document)
        # Each client's next clock in the document: what an update may build on.
        self._clocks = read_state_vector(document.ydoc.get_state())
        self._integrating: UpdateShape | None = None  # a participant's update being applied
        self.log = DocumentLog(store, session_id, document.state, self._not_saving)
        self._origin: object | None = None  # the peer whose change is being applied
        self.yjs = YjsSync(document.ydoc, self._apply_yjs, session_id)
        self.text = TextSync(document, self.log.save_code)
        self.relay = Relay(self.log, self.yjs, self.text)
        self.cells = CellEdits(document, gate, self._applying)
        self.inputs = Inputs(self.broadcast)
        self.members: dict[str, _Member] = {}
        # Connections and runs using the room: it stays loaded while any does (see Rooms).
        self.holds = 0
        self.closed = False
        self._removed: set[str] = set()  # client ids the host removed while it was open
        self._subscription = document.observe(self._changed)

    # Participants

    def admit(self, participant: Participant, limit: int) -> None:
        """Count a connection of ``participant``, within ``limit`` participants at a time (a
        participant who is already here may open more connections). Checking and counting in
        one step, with no wait between, is what keeps simultaneous joins within the limit."""
        if self.closed:
            raise SessionEnded(f"Session {self.session_id} has ended.")
        self.check_not_removed(participant.client_id)
        member = self.members.get(participant.client_id)
        if member is None:
            if len(self.members) >= limit:
                raise SessionFull(
                    f"Session {self.session_id} is full: it allows {limit} participants at a time.",
                    public=f"This interview is full: it allows {limit} people at a time.",
                )
            member = self.members[participant.client_id] = _Member(participant)
            self.broadcast(ParticipantJoined(**self._presence(participant)))
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
        self.broadcast(ParticipantLeft(**self._presence(member.participant)))
        return member.participant

    def participants(self) -> list[ConnectedParticipant]:
        """Who is connected now."""
        return [
            ConnectedParticipant(
                client_id=m.participant.client_id,
                display_name=m.participant.display_name,
                role=m.participant.role,
                connected=True,
                colour=m.participant.colour,
            )
            for m in self.members.values()
        ]

    def _presence(self, participant: Participant) -> dict[str, object]:
        return {
            "client_id": participant.client_id,
            "display_name": participant.display_name,
            "role": participant.role,
            "participant_count": len(self.members),
            "colour": participant.colour,
        }

    def check_not_removed(self, client_id: str) -> None:
        if client_id in self._removed:
            raise ParticipantRemoved(
                f"Session {self.session_id}: {client_id} was removed by the host."
            )

    def remove(self, client_id: str) -> None:
        """The host removes ``client_id``: from now on it cannot join (a join under way finds
        it removed); :meth:`expel` closes its connections."""
        self._removed.add(client_id)

    def readmit(self, client_id: str) -> None:
        """The host let ``client_id`` back in: it may connect again."""
        self._removed.discard(client_id)

    def expel(self, client_id: str, reason: str) -> None:
        """Close every connection of ``client_id`` (the host removed it)."""
        for peer in self.text.peers:
            if peer.client_id == client_id:
                peer.send_event(Error(code="removed", message=reason))
                peer.close(REMOVED, reason[:120])
        for yjs in list(self.yjs.peers):
            if yjs.client_id == client_id:
                yjs.close(REMOVED, reason[:120])

    # Connections

    def add_json_peer(self, peer: JsonPeer, code_updates: bool = True) -> None:
        self.text.add(peer, code_updates)

    def remove_json_peer(self, peer: JsonPeer) -> None:
        self.text.remove(peer)

    def add_yjs_peer(self, peer: YjsPeer) -> list[bytes]:
        """A Yjs connection joins; the messages to open it with."""
        return self.yjs.add(peer)

    def remove_yjs_peer(self, peer: YjsPeer) -> None:
        self.yjs.remove(peer)

    def broadcast(
        self, event: Event, but: object | None = None, roles: tuple[str, ...] | None = None
    ) -> None:
        """Send an event to every JSON connection (but ``but``; of ``roles`` only, if given)."""
        self.text.broadcast(event, but, roles)

    # Changes

    def replace_code(self, peer: JsonPeer, code: str, base_version: int | None = None) -> None:
        """Apply a JSON peer's whole text, as a change from the version it wrote on; raise if
        it may not make it (the change is then not kept)."""
        self.gate(peer.role, Action.EDIT)
        if peer.role != "host" and self.document.first_code_cell_locked():
            raise CellLocked(
                f"Session {self.session_id}: {peer.client_id} wrote to a locked cell.",
                public="That cell is locked: only the interviewer can change it.",
            )
        check_document(self.limits, 0, len(code))
        base = self.text.base_of(peer, code, base_version)

        def apply() -> None:
            self.document.replace_code(code, base=base)

        def author() -> contextlib.AbstractContextManager[None]:
            return self._applying(peer)

        if self.size.fits(len(code)):
            with author():
                apply()
            self.size.grew(len(code))
        else:
            _, refused = apply_refusably(self.document, self._undo, apply, self._too_large, author)
            if refused is not None:
                self._refused(peer, refused)
                raise refused
        self.text.sent(peer, code)

    def _apply_yjs(self, peer: YjsPeer, payload: bytes) -> bytes | None:
        """Apply a Yjs peer's change (sync step 2 or an update).

        One that could not be integrated whole (it builds on what the server does not have,
        or adds to what the notebook does not have) is not applied at all, and its author's
        connection is closed (:class:`~kernelpad.errors.ChangeNotMerged`): pycrdt would hold it
        back and integrate it later, inside someone else's change, past every check. Any other
        is applied; one the rules refuse (a candidate's, while editing is locked), that
        touches what only kernelpad writes, or that would take the notebook past its limits
        is undone at once, for everyone (see :mod:`.refusal`)."""
        update = sync_update(payload)
        shape = read_update(update)
        unmergeable = self._unmergeable(shape)
        if unmergeable is not None:
            not_merged = ChangeNotMerged(f"A change was not applied: {unmergeable}.")
            self._refused(peer, not_merged, "not applied")
            raise not_merged
        ruled: Exception | None = None
        try:
            self.gate(peer.role, Action.EDIT)
        except KernelpadError as exc:
            ruled = exc

        def apply() -> None:
            self.document.ydoc.apply_update(update)

        def refusal() -> Exception | None:
            if ruled is not None:
                return ruled
            trespass = self._kernel_fields.trespass
            if trespass == "a locked cell":
                return CellLocked(
                    f"Session {self.session_id}: {peer.client_id} changed a locked cell.",
                    public="That cell is locked: only the interviewer can change it.",
                )
            if trespass is not None:
                return Forbidden(f"Only kernelpad writes {trespass}: runs do.")
            if self.size.fits(len(update)):
                self.size.grew(len(update))
                return None
            return self._too_large()

        def author() -> contextlib.AbstractContextManager[None]:
            return self._applying(peer, watched=True)

        # It integrates whole: the clocks are its ends (no need to read it again as stored).
        self._integrating = shape
        try:
            _, refused = apply_refusably(self.document, self._undo, apply, refusal, author)
        finally:
            self._integrating = None
        if refused is not None:
            self._refused(peer, refused)
        return None

    def _unmergeable(self, shape: UpdateShape) -> str | None:
        """Why an update could not be integrated whole and alone, if it could not."""
        unknown = shape.roots - set(ROOTS)
        if unknown:
            return f"it adds to a part the notebook does not have ({min(unknown)[:40]!r})"
        if shape.subdocuments:
            return "it embeds a document"
        return held_back(shape, self._clocks)

    def _too_large(self) -> Exception | None:
        """The refusal of a change that took the notebook past its limits, if it did."""
        try:
            check_document(self.limits, *self.size.measure(self.document))
        except DocumentTooLarge as exc:
            return exc
        return None

    def _refused(
        self, peer: JsonPeer | YjsPeer, refusal: Exception, outcome: str = "undone"
    ) -> None:
        """Tell the operator, and the author on their JSON connection (a Yjs client cannot be
        told: it sees its change undone)."""
        log.warning(
            "session %s: a change by %s (%s) was %s: %s",
            self.session_id,
            peer.client_id,
            peer.role,
            outcome,
            refusal,
            extra=about(self.session_id),
        )
        if isinstance(refusal, KernelpadError) and outcome == "undone":
            # (A change not applied closes its Yjs connection, with the reason: the page says.)
            for other in self.text.peers:
                if other.client_id == peer.client_id and other is not peer:
                    other.send_event(
                        Error(
                            code=refusal.code,
                            message=f"Your last change was {outcome}: {refusal.public}",
                        )
                    )

    def _applying(self, origin: object, watched: bool = False) -> _Applying:
        """Changes made in this block are ``origin``'s (stored with it as their author);
        ``watched``: the room notes whether they touch what only kernelpad writes."""
        return _Applying(self, origin, self._kernel_fields if watched else None)

    def _changed(self, update: bytes) -> None:
        """Every change, whoever made it: stored, then sent to everyone else (see
        :mod:`.relay`)."""
        # A participant's update integrates whole (see _apply_yjs): its own ends are the
        # clocks'. Anything else (kernelpad's changes, an undoing) is read.
        origin = self._origin
        shape = self._integrating if origin is not None else None
        shape = shape or read_update(update)
        advance(self._clocks, shape.ends().items())
        self.relay.changed(update, origin)

    def _not_saving(self) -> None:
        """Storage failed to commit a change (and keeps trying): nobody else sees it, nor
        anything after it, until it is committed. Everyone is told why."""
        self.broadcast(
            Error(
                code="not_saved",
                message="The server cannot save changes at the moment. Keep this page open:"
                " changes are kept and shared as soon as they are saved.",
            )
        )

    def compact(self) -> None:
        """Store the document as it is now, in one piece, for the next load to start from."""
        self.log.compact()

    # Runs

    def start_run(self, execution_id: str, cell_id: str | None, language: str, code: str) -> Run:
        """A run that everyone will watch: it tells them when it starts and what it prints."""
        return Run(
            execution_id,
            cell_id,
            language,
            code,
            self.document,
            self.broadcast,
            self.inputs,
            self.relay.after_stored,
        )

    def answer_input(self, role: str, value: str, execution_id: str | None = None) -> bool:
        """Answer a run's input request, if ``role`` may; whether there was one to answer."""
        self.gate(role, Action.ANSWER_INPUT)
        return self.inputs.answer(value, execution_id)

    # The end

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection (the session has ended, or the server is stopping), and
        store what is pending. Nobody may join it any more."""
        self.closed = True
        self.settle()
        self._kernel_fields.close()
        self.yjs.close(code, reason)
        self.text.close(code, reason)

    def settle(self) -> None:
        """Store the document in one piece, if it changed since it last was, and its code as
        of now: nobody is here."""
        self.text.catch_up()
        if self.log.pending:
            self.compact()
