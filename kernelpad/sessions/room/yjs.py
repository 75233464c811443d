"""The y-websocket side of a room: sync steps, updates and awareness (who is where).

A Yjs client syncs with the server's copy of the document (step 1 asks with a state vector, step
2 and updates change it) and shares its presence as awareness states, which the server relays
and keeps, so that one who joins sees the others at once and one who leaves disappears for the
rest. A client may speak only for its own presence.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Protocol

from pycrdt import (
    Awareness,
    Decoder,
    Doc,
    YMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)

from kernelpad import logs
from kernelpad.errors import KernelpadError
from kernelpad.sessions.room import presence

log = logging.getLogger(__name__)

# y-websocket's sync message types: step 1 (a state vector) asks; the others change the document.
SYNC_STEP1 = 0


class YjsPeer(Protocol):
    """A Yjs connection, as the room sees it."""

    @property
    def client_id(self) -> str: ...

    @property
    def role(self) -> str: ...

    def send_bytes(self, message: bytes) -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class YjsSync:
    """The Yjs connections of one document, and their awareness states.

    ``apply(peer, payload)`` applies a sync message that changes the document (step 2 or an
    update; the room decides whether the change may stay) and returns the reply, if any.
    ``session_id`` names the session in the log.
    """

    def __init__(
        self,
        ydoc: Doc,  # type: ignore[type-arg]
        apply: Callable[[YjsPeer, bytes], bytes | None],
        session_id: str = "",
    ) -> None:
        self.ydoc = ydoc
        self.session_id = session_id
        self.apply = apply
        self.peers: set[YjsPeer] = set()
        self.awareness = Awareness(ydoc)
        self.awareness.set_local_state(None)
        self._owned: dict[YjsPeer, set[int]] = collections.defaultdict(set)

    def add(self, peer: YjsPeer) -> list[bytes]:
        """A connection joins; the messages that open it: the server's state vector, and who
        is here."""
        self.peers.add(peer)
        messages = [create_sync_message(self.ydoc)]
        present = [cid for cid in self.awareness.states if cid != self.awareness.client_id]
        if present:
            messages.append(
                create_awareness_message(self.awareness.encode_awareness_update(present))
            )
        return messages

    def remove(self, peer: YjsPeer) -> None:
        """A connection closed: its clients' awareness states go, for everyone."""
        self.peers.discard(peer)
        owned = [cid for cid in self._owned.pop(peer, set()) if cid in self.awareness.states]
        if owned:
            self.awareness.remove_awareness_states(owned, None)
            gone = create_awareness_message(self.awareness.encode_awareness_update(owned))
            for other in list(self.peers):
                other.send_bytes(gone)

    def relay(self, update: bytes, origin: object | None) -> None:
        """Send a change of the document to every Yjs connection but the one it came from."""
        message = create_update_message(update)
        for peer in list(self.peers):
            if peer is not origin:
                peer.send_bytes(message)

    def receive(self, peer: YjsPeer, message: bytes) -> bytes | None:
        """Handle a Yjs message of ``peer``; return the reply to send it, if any.

        Raises ``ValueError`` for a message that is not valid Yjs, and the room's
        :class:`~kernelpad.errors.KernelpadError` for a change it could not take at all.
        """
        if not message:
            raise ValueError("empty message")
        kind = message[0]
        if kind == YMessageType.SYNC:
            return self._sync(peer, message)
        if kind == YMessageType.AWARENESS:
            self._awareness(peer, message)
        # y-websocket's other types (auth, awareness queries) ask nothing of this server.
        return None

    def _sync(self, peer: YjsPeer, message: bytes) -> bytes | None:
        payload = message[1:]
        try:
            if payload and payload[0] != SYNC_STEP1:
                return self.apply(peer, payload)
            return handle_sync_message(payload, self.ydoc)
        except (ValueError, KernelpadError):
            raise
        except Exception as exc:
            raise ValueError(f"invalid Yjs sync message: {exc}") from exc

    def _awareness(self, peer: YjsPeer, message: bytes) -> None:
        try:
            update = read_message(message[1:])
            ids = awareness_ids(update)
        except Exception as exc:
            raise ValueError(f"invalid awareness message: {exc}") from exc
        if any(self._owner_of(cid, peer) for cid in ids):
            return  # another participant's presence is theirs alone to change
        # What would restyle the others' pages, or is not a presence, is left out of what is
        # kept and relayed (see presence.py): no other client ever receives it.
        checked = presence.check_update(update)
        if checked.dropped:
            log.warning(
                "session %s: left out of the presence %s sent: %s",
                self.session_id,
                peer.client_id,
                "; ".join(checked.dropped),
                extra=logs.about(self.session_id),
            )
        if checked.update is None:
            return
        if checked.update is not update:
            update = checked.update
            message = create_awareness_message(update)
        try:
            before = dict(self.awareness.meta)
            self.awareness.apply_awareness_update(update, peer)
        except Exception as exc:
            raise ValueError(f"invalid awareness message: {exc}") from exc
        # The client ids this update changed belong to this connection now: a tab that
        # reconnects with its old client id before its old socket is reaped must not vanish
        # when the old socket's states are removed.
        claimed = {cid for cid, meta in self.awareness.meta.items() if before.get(cid) != meta}
        for other, owned in self._owned.items():
            if other is not peer:
                owned -= claimed
        self._owned[peer] |= claimed
        for other in list(self.peers):
            if other is not peer:
                other.send_bytes(message)

    def _owner_of(self, awareness_id: int, peer: YjsPeer) -> YjsPeer | None:
        """The connection of another participant that owns ``awareness_id``, if any (a
        participant's other connection, say a reloaded tab, may take it over)."""
        for other, owned in self._owned.items():
            if other is not peer and awareness_id in owned and other.client_id != peer.client_id:
                return other
        return None

    def close(self, code: int, reason: str) -> None:
        for peer in list(self.peers):
            peer.close(code, reason)


def awareness_ids(update: bytes) -> list[int]:
    """The client ids an awareness update speaks for (y-protocols' encoding: a count, then
    for each an id, a clock and a JSON state)."""
    decoder = Decoder(update)
    ids = []
    for _ in range(decoder.read_var_uint()):
        ids.append(decoder.read_var_uint())
        decoder.read_var_uint()
        decoder.read_var_string()
    return ids
