"""Tickets: single-use stand-ins for a participant's token where a token must not go.

The Yjs socket is opened by y-websocket with everything in its URL, and a URL is shown in the
browser's console and written to the access log of every proxy on the way. So the pad does not
put its token there: it first asks for a ticket (``POST /api/v1/sessions/{id}/tickets``, the
token in the Authorization header) and opens the socket with the ticket. A ticket lets one
connection in, to one session, as one participant, within :data:`TTL` seconds; one seen in a
log afterwards is worth nothing. It holds the token it stands for, so that joining with it goes
through exactly the checks that joining with the token does.

Tickets live in this process's memory only: a session's requests all reach one process (see
docs/deploy.md), and a ticket outlives no restart, which its holder does not notice (it asks for
a new one on every connection). Nothing here knows of HTTP.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kernelpad.errors import (
    Forbidden,
    InvalidTicket,
    NotAuthenticated,
    ParticipantRemoved,
    SessionEnded,
)
from kernelpad.sessions.access import Access
from kernelpad.sessions.models import ACTIVE, Session
from kernelpad.sessions.tokens import token_matches

#: Seconds a ticket stays good: long enough for a slow network between asking and connecting.
TTL = 30.0
#: Tickets one participant may hold at once (a page reconnecting asks for one each time); a
#: newer one pushes the oldest out, so that no holder of a token can fill the server's memory.
PER_HOLDER = 8
#: Tickets held at once by everyone (a host's token may ask for any client_id): far more than
#: connections can be opened in :data:`TTL` seconds; past it, the oldest go.
LIMIT = 10_000


@dataclass(frozen=True)
class Grant:
    """What a ticket stands for: connecting to ``session_id`` as ``client_id``, with the token
    that allows it (the host's or the participant's)."""

    session_id: str
    client_id: str
    host_token: str | None = None
    participant_token: str | None = None


@dataclass
class TicketStore:
    """The tickets issued and not yet used or expired, oldest first."""

    ttl: float = TTL
    per_holder: int = PER_HOLDER
    limit: int = LIMIT
    clock: Callable[[], float] = time.monotonic
    _tickets: dict[str, tuple[Grant, float]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self._tickets)

    def issue(self, grant: Grant) -> str:
        """A new ticket for ``grant``."""
        self._let_expired_go()
        holder = (grant.session_id, grant.client_id)
        held = [t for t, (g, _) in self._tickets.items() if (g.session_id, g.client_id) == holder]
        for ticket in held[: max(0, len(held) - self.per_holder + 1)]:
            del self._tickets[ticket]
        for ticket in list(self._tickets)[: max(0, len(self._tickets) - self.limit + 1)]:
            del self._tickets[ticket]
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = (grant, self.clock() + self.ttl)
        return ticket

    def redeem(self, ticket: str, session_id: str) -> Grant:
        """What ``ticket`` stands for, used up now (whatever the answer: a ticket tried at the
        wrong session is spent too); :class:`InvalidTicket` if it is not good here."""
        grant, expires = self._tickets.pop(ticket, (None, 0.0))
        if grant is None:
            raise InvalidTicket("The ticket is unknown or was used already: ask for a new one.")
        if self.clock() >= expires:
            raise InvalidTicket("The ticket has expired: ask for a new one.")
        if grant.session_id != session_id:
            raise InvalidTicket("The ticket is for another interview.")
        return grant

    def _let_expired_go(self) -> None:
        # Every ticket lives as long, so the oldest expire first.
        now = self.clock()
        for ticket, (_, expires) in list(self._tickets.items()):
            if expires > now:
                break
            del self._tickets[ticket]


def grant_for(session: Session, client_id: str, token: str | None) -> Grant:
    """What the holder of ``token`` may have a ticket for: connecting as ``client_id``, if the
    token could join as it. The host's token may name anyone, as it may join as anyone; a
    participant's token, only that participant. (Joining with the ticket checks again.)"""
    if session.status != ACTIVE:
        raise SessionEnded("This interview has ended.")
    if not token:
        raise NotAuthenticated(
            "A ticket needs your token (header 'Authorization: Bearer <token>'): the host"
            " token, or the participant token you were given when you joined."
        )
    participant = next((p for p in session.participants if p.client_id == client_id), None)
    if participant is not None and participant.removed_at is not None:
        raise ParticipantRemoved(
            f"{participant.display_name} was removed from this interview by the host."
        )
    if Access.is_host(session, token):
        return Grant(session.id, client_id, host_token=token)
    if participant is None or not participant.token_hash:
        raise Forbidden(f"There is no participant {client_id!r} with a token to show here.")
    if not token_matches(token, participant.token_hash):
        raise Forbidden(f"That is not the token of {client_id!r}.")
    return Grant(session.id, client_id, participant_token=token)
