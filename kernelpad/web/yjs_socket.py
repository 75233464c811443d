"""``/ws/yjs/{session_id}``: a session's document over the y-websocket protocol."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable

import pydantic

from kernelpad import errors
from kernelpad.logs import about
from kernelpad.sessions.tickets import TicketStore
from kernelpad.web.messages import JoinSessionData
from kernelpad.web.socket_base import (
    BAD_REQUEST,
    ENDED,
    FULL,
    NOT_MERGED,
    UNAUTHORIZED,
    SessionSocketBase,
    problem,
)

log = logging.getLogger(__name__)


class YjsSocket(SessionSocketBase):
    """``/ws/yjs/{session_id}``: a y-websocket room per session.

    Who connects is named in the query (y-websocket's ``params``): ``client_id``,
    ``display_name`` and ``ticket``, all optional; a client that names nobody (an unmodified
    y-websocket client) joins as a guest with an id of its own. A ticket
    (:mod:`kernelpad.sessions.tickets`) stands for the participant's token, which does not go
    in a URL; older clients that send ``host_token`` or ``participant_token`` there instead
    are still let in.
    """

    protocol = "yjs"
    name = "Yjs"

    async def open(self, session_id: str) -> None:
        room = await self._enter(session_id)
        if room is None:
            return
        try:
            join = self._joining(session_id)
        except pydantic.ValidationError as exc:
            code, reason = problem(exc)
            self.refused("a connection", 422, code, f"{reason} (closed with {BAD_REQUEST})")
            self.close(BAD_REQUEST, reason[:120])
            return
        except errors.InvalidTicket as exc:
            self.close_refused("a connection", UNAUTHORIZED, exc)
            return
        try:
            await self._join(room, join)
        except (errors.SessionFull, errors.Forbidden) as exc:
            self.close_refused("a connection", FULL, exc)
            return
        except errors.SessionEnded as exc:
            self.close_refused("a connection", ENDED, exc)
            return
        except errors.InvalidValue:
            return  # it went away while it joined
        for message in room.add_yjs_peer(self):
            self.send_bytes(message)

    def _joining(self, session_id: str) -> JoinSessionData:
        """Who connects, with what right: a ticket's, or (an older client) tokens in the query."""
        arg = self.get_query_argument
        client_id, ticket = arg("client_id", None), arg("ticket", None)
        self.claimed = client_id or ""
        host_token, participant_token = arg("host_token", None), arg("participant_token", None)
        if ticket is not None:
            tickets: TicketStore = self.application.settings["tickets"]
            grant = tickets.redeem(ticket, session_id)
            if client_id and client_id != grant.client_id:
                raise errors.InvalidTicket("The ticket is for another participant.")
            client_id = grant.client_id
            host_token, participant_token = grant.host_token, grant.participant_token
        elif host_token or participant_token:
            log.info(
                "session %s: %s sent its token in the Yjs socket's URL, where proxies log it"
                " (an older client: kernelpad's pages send a ticket instead)",
                session_id,
                client_id or "a client",
                extra=about(session_id),
            )
        return JoinSessionData.model_validate(
            {
                "client_id": client_id or f"yjs-{secrets.token_hex(6)}",
                "display_name": arg("display_name", None) or "Guest",
                "host_token": host_token,
                "participant_token": participant_token,
            }
        )

    def send_bytes(self, message: bytes) -> None:
        self._write(message)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        # Handled here and now, unless its sender is held back: a coroutine would be a task
        # of its own for every keystroke, and two more turns of the event loop before the
        # next message is read (tornado waits for what on_message returns).
        delay = self._turn()
        if delay > 0:
            return self._handle_later(message, delay)
        self._handle(message)
        return None

    async def _handle_later(self, message: str | bytes, delay: float) -> None:
        await self._wait(delay)
        self._handle(message)

    def _handle(self, message: str | bytes) -> None:
        if self.room is None or self.closed:
            return
        if isinstance(message, str):
            self.refused("a message", 400, "invalid_yjs", "a text frame (closed with 1003)")
            self.close(1003, "the Yjs socket takes binary frames")
            return
        try:
            reply = self.room.yjs.receive(self, message)
        except ValueError as exc:
            self.refused("a message", 400, "invalid_yjs", f"{exc} (closed with 1002)")
            self.close(1002, "invalid Yjs message")
            return
        except errors.ChangeNotMerged as exc:
            # Nothing of the change was applied (the room has logged it). The connection
            # goes: its client's later changes build on this one, and would fail alike.
            self.close(NOT_MERGED, exc.public[:120])
            return
        if reply:
            self.send_bytes(reply)

    def on_close(self) -> None:
        if self.room is not None:
            self.room.remove_yjs_peer(self)
        self._leave()
