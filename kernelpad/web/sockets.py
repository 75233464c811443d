"""WebSocket endpoints of a session: Yjs (y-websocket protocol) and the original JSON protocol.

Both call ``set_nodelay(True)``: their messages are small and frequent, and Nagle's algorithm
would hold each one back about 40 ms. Bad input gets an ``error`` message and the connection
stays open (a frame that is not valid Yjs closes the Yjs connection with 1002, protocol error);
messages over ``max_request_size`` close with 1009 (Tornado's own limit).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pydantic
import tornado.websocket

from kernelpad import errors
from kernelpad.sessions.collaboration import Room
from kernelpad.sessions.manager import SESSION_ENDED_CLOSE, SessionManager
from kernelpad.sessions.models import Participant
from kernelpad.web.schemas import (
    CodeUpdateData,
    ExecuteData,
    InputReplyData,
    JoinSessionData,
    KernelData,
    SocketMessage,
)

log = logging.getLogger(__name__)

# Tasks started by a closing socket, kept until done.
_pending: set[asyncio.Future[None]] = set()

# Close codes, in the range applications own.
NOT_FOUND = 4404
FULL = 4403
ENDED = SESSION_ENDED_CLOSE


class _Throttle:
    """Messages a connection sent in the last second, against the setting's limit."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.times: collections.deque[float] = collections.deque()

    def allow(self) -> bool:
        now = time.monotonic()
        while self.times and self.times[0] <= now - 1.0:
            self.times.popleft()
        if len(self.times) >= self.per_second:
            return False
        self.times.append(now)
        return True


class _SessionSocket(tornado.websocket.WebSocketHandler):
    room: Room | None = None

    def initialize(self) -> None:
        limit = self.application.settings["kernelpad"].ws_messages_per_second
        self.throttle = _Throttle(limit)

    @property
    def manager(self) -> SessionManager:
        manager: SessionManager = self.application.settings["manager"]
        return manager

    def check_origin(self, origin: str) -> bool:
        # Browsers send Origin: the server's own pages and the configured CORS origins may
        # connect; other tools (no Origin) may too.
        allowed = self.application.settings["kernelpad"].cors_origins
        host = self.request.headers.get("Host", "")
        return (
            "*" in allowed
            or origin.rstrip("/") in (o.rstrip("/") for o in allowed)
            or origin.split("://", 1)[-1] == host
        )

    async def _enter(self, session_id: str) -> Room | None:
        self.set_nodelay(True)
        try:
            self.room = await self.manager.room(session_id)
        except errors.SessionNotFound as exc:
            self.close(NOT_FOUND, exc.message[:120])
        except errors.SessionEnded as exc:
            self.close(ENDED, exc.message[:120])
        return self.room


class YjsSocket(_SessionSocket):
    """``/ws/yjs/{session_id}``: a y-websocket room per session."""

    async def open(self, session_id: str) -> None:
        room = await self._enter(session_id)
        if room is None:
            return
        room.yjs_peers.add(self)
        for message in room.greeting():
            self.send_bytes(message)

    def send_bytes(self, message: bytes) -> None:
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            _quietly(self.write_message(message, binary=True))

    def on_message(self, message: str | bytes) -> None:
        if self.room is None:
            return
        if not self.throttle.allow():
            # Dropping a Yjs update would leave the client out of step: close instead.
            self.close(1008, "too many messages")
            return
        if isinstance(message, str):
            self.close(1003, "the Yjs socket takes binary frames")
            return
        try:
            reply = self.room.receive_yjs(self, message)
        except ValueError as exc:
            log.info("session %s: closing a Yjs connection: %s", self.room.session_id, exc)
            self.close(1002, "invalid Yjs message")
            return
        if reply:
            self.send_bytes(reply)

    def on_close(self) -> None:
        if self.room is not None:
            self.room.remove_yjs_peer(self)
            self.manager.rooms.release(self.room)


class SessionSocket(_SessionSocket):
    """``/ws/sessions/{session_id}``: the original JSON protocol (SEED_API.md)."""

    participant: Participant | None = None

    @property
    def client_id(self) -> str:
        return self.participant.client_id if self.participant else ""

    @property
    def display_name(self) -> str:
        return self.participant.display_name if self.participant else ""

    @property
    def role(self) -> str:
        return self.participant.role if self.participant else ""

    async def open(self, session_id: str) -> None:
        await self._enter(session_id)

    def send_json(self, kind: str, data: dict[str, Any]) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        message = {"type": kind, "data": data, "timestamp": datetime.now(UTC).isoformat()}
        _quietly(self.write_message(json.dumps(message)))

    def error(self, code: str, message: str) -> None:
        self.send_json("error", {"code": code, "message": message})

    async def on_message(self, message: str | bytes) -> None:
        if self.room is None:
            return
        if not self.throttle.allow():
            limit = self.throttle.per_second
            self.error("throttled", f"More than {limit} messages a second: this one was dropped.")
            return
        if isinstance(message, bytes):
            self.error("binary_frame", "This socket takes JSON text messages, not binary frames.")
            return
        try:
            envelope = SocketMessage.model_validate_json(message)
        except pydantic.ValidationError as exc:
            self.error(*_problem(exc))
            return
        handler = getattr(self, f"_on_{envelope.type}", None)
        if handler is None:
            self.error(
                "unknown_type",
                f"Unknown message type {envelope.type!r}; expected one of: join_session,"
                " code_update, execute, interrupt, restart_kernel, input_reply.",
            )
            return
        try:
            await handler(envelope.data)
        except pydantic.ValidationError as exc:
            self.error(*_problem(exc, envelope.type))
        except errors.SessionFull as exc:
            self.error(exc.code, exc.message)
            self.close(FULL, "session full")
        except errors.KernelpadError as exc:
            self.error(exc.code, exc.message)

    async def _on_join_session(self, data: dict[str, Any]) -> None:
        assert self.room is not None
        join = JoinSessionData.model_validate(data)
        if join.session_id is not None and join.session_id != self.room.session_id:
            raise errors.InvalidValue(
                f"session_id {join.session_id!r} is not this socket's session"
                f" ({self.room.session_id})."
            )
        token = join.host_token
        self.participant = await self.manager.join(
            self.room, join.client_id, join.display_name, token
        )
        first = all(peer.client_id != join.client_id for peer in self.room.json_peers)
        self.room.add_json_peer(self)
        participants = list(
            {
                peer.client_id: {
                    "client_id": peer.client_id,
                    "display_name": peer.display_name,
                    "role": peer.role,
                }
                for peer in self.room.json_peers
            }.values()
        )
        self.send_json(
            "session_state",
            {
                "session_id": self.room.session_id,
                "code": self.room.document.code,
                "language": self.room.document.language,
                "participant_count": len(participants),
                "participants": participants,
            },
        )
        if first:
            self.room.broadcast_json(
                "participant_joined",
                {
                    "client_id": self.client_id,
                    "display_name": self.display_name,
                    "role": self.role,
                    "participant_count": len(participants),
                },
                but=self,
            )

    def _joined(self, what: str) -> Room:
        if self.room is None or self.participant is None:
            raise errors.InvalidValue(f"Send join_session before {what}.")
        return self.room

    async def _on_execute(self, data: dict[str, Any]) -> None:
        room = self._joined("execute")
        request = ExecuteData.model_validate(data)
        if request.cell_id is not None:
            cell = room.document.cell(request.cell_id)
            if cell is None:
                raise errors.InvalidValue(f"There is no cell {request.cell_id!r} in this notebook.")
            code, language = cell
        elif request.code is not None:
            code, language = request.code, request.language or room.document.language
        else:
            raise errors.InvalidValue("execute needs a cell_id, or code (and a language).")
        # The run goes on by itself: this socket keeps reading (an interrupt, input replies).
        task = asyncio.ensure_future(
            self._run_code(room, code, language, request.time_limit, request.cell_id)
        )
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _run_code(
        self, room: Room, code: str, language: str, time_limit: int | None, cell_id: str | None
    ) -> None:
        try:
            await self.manager.execute(room.session_id, code, language, time_limit, None, cell_id)
        except errors.KernelpadError as exc:
            self.error(exc.code, exc.message)
        except Exception:
            log.exception("session %s: a run from a socket failed", room.session_id)
            self.error("internal_error", "kernelpad hit an internal error; see its log.")

    async def _on_interrupt(self, data: dict[str, Any]) -> None:
        room = self._joined("interrupt")
        language = KernelData.model_validate(data).language or room.document.language
        if not await self.manager.interrupt(room.session_id, language):
            self.error("not_running", f"No {language} code is running in this session.")

    async def _on_restart_kernel(self, data: dict[str, Any]) -> None:
        room = self._joined("restart_kernel")
        language = KernelData.model_validate(data).language or room.document.language
        await self.manager.restart_kernel(room.session_id, language)

    async def _on_input_reply(self, data: dict[str, Any]) -> None:
        room = self._joined("input_reply")
        reply = InputReplyData.model_validate(data)
        if not room.answer_input(reply.value, reply.execution_id):
            self.error("no_input_request", "No run is waiting for input.")

    async def _on_code_update(self, data: dict[str, Any]) -> None:
        assert self.room is not None
        if self.participant is None:
            raise errors.InvalidValue("Send join_session before code_update.")
        update = CodeUpdateData.model_validate(data)
        self.room.replace_code(self, update.code)

    def on_close(self) -> None:
        room, participant = self.room, self.participant
        if room is None or participant is None:
            return
        room.remove_json_peer(self)
        self.manager.rooms.release(room)
        if all(peer.client_id != participant.client_id for peer in room.json_peers):
            remaining = len({peer.client_id for peer in room.json_peers})
            room.broadcast_json(
                "participant_left",
                {
                    "client_id": participant.client_id,
                    "display_name": participant.display_name,
                    "participant_count": remaining,
                },
            )
            task = asyncio.ensure_future(self.manager.leave(room.session_id, participant))
            _pending.add(task)
            task.add_done_callback(_pending.discard)


def _quietly(write: asyncio.Future[None]) -> None:
    """Let a write fail without noise: a peer that went away is noticed in on_close."""
    write.add_done_callback(lambda done: done.cancelled() or done.exception())


def _problem(exc: pydantic.ValidationError, kind: str | None = None) -> tuple[str, str]:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return "invalid_json", f"The message is not valid JSON: {first['msg']}."
    where = ".".join(str(part) for part in first["loc"]) or "message"
    prefix = f"{kind}: " if kind else ""
    return "validation_error", f"Invalid {prefix}{where}: {first['msg']}."
