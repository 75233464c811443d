"""``/ws/yjs/{session_id}``: a session's document over the y-websocket protocol."""

from __future__ import annotations

import logging
import secrets

import pydantic

from kernelpad import errors
from kernelpad.web.messages import JoinSessionData
from kernelpad.web.socket_base import BAD_REQUEST, ENDED, FULL, SessionSocketBase, problem

log = logging.getLogger(__name__)


class YjsSocket(SessionSocketBase):
    """``/ws/yjs/{session_id}``: a y-websocket room per session.

    Who connects is named in the query (y-websocket's ``params``): ``client_id``,
    ``display_name`` and ``host_token``, all optional; a client that names nobody (an
    unmodified y-websocket client) joins as a guest with an id of its own.
    """

    protocol = "yjs"

    async def open(self, session_id: str) -> None:
        room = await self._enter(session_id)
        if room is None:
            return
        try:
            join = JoinSessionData.model_validate(
                {
                    "client_id": self.get_query_argument("client_id", None)
                    or f"yjs-{secrets.token_hex(6)}",
                    "display_name": self.get_query_argument("display_name", None) or "Guest",
                    "host_token": self.get_query_argument("host_token", None),
                    "participant_token": self.get_query_argument("participant_token", None),
                }
            )
        except pydantic.ValidationError as exc:
            self.close(BAD_REQUEST, problem(exc)[1][:120])
            return
        try:
            await self._join(room, join)
        except (errors.SessionFull, errors.Forbidden) as exc:
            self.close(FULL, exc.public[:120])
            return
        except errors.SessionEnded as exc:
            self.close(ENDED, exc.public[:120])
            return
        except errors.InvalidValue:
            return
        for message in room.add_yjs_peer(self):
            self.send_bytes(message)

    def send_bytes(self, message: bytes) -> None:
        self._write(message)

    async def on_message(self, message: str | bytes) -> None:
        await self._wait_turn()
        if self.room is None or self.closed:
            return
        if isinstance(message, str):
            self.close(1003, "the Yjs socket takes binary frames")
            return
        try:
            reply = self.room.yjs.receive(self, message)
        except ValueError as exc:
            log.info("session %s: closing a Yjs connection: %s", self.room.session_id, exc)
            self.close(1002, "invalid Yjs message")
            return
        if reply:
            self.send_bytes(reply)

    def on_close(self) -> None:
        if self.room is not None:
            self.room.remove_yjs_peer(self)
        self._leave()
