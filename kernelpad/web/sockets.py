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
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pydantic
import tornado.websocket

from kernelpad import errors, metrics
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
BAD_REQUEST = 4400
NOT_FOUND = 4404
FULL = 4403
ENDED = SESSION_ENDED_CLOSE


class _Throttle:
    """Messages a connection sent in the last second, against the setting's limit."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.times: collections.deque[float] = collections.deque()

    def delay(self) -> float:
        """0 if a message may be handled now (it is counted); else how long to wait first."""
        now = time.monotonic()
        while self.times and self.times[0] <= now - 1.0:
            self.times.popleft()
        if len(self.times) >= self.per_second:
            return self.times[0] + 1.0 - now
        self.times.append(now)
        return 0.0


class _SessionSocket(tornado.websocket.WebSocketHandler):
    """What both sockets share: entering a session's room as a participant, throttling what
    a client sends, and cutting off a client that does not read what it is sent."""

    room: Room | None = None
    participant: Participant | None = None
    protocol = ""  # for /metrics: "yjs" or "json"

    def initialize(self) -> None:
        settings = self.application.settings["kernelpad"]
        self.throttle = _Throttle(settings.ws_messages_per_second)
        self.max_buffered = settings.ws_max_buffered_bytes
        self.buffered = 0  # bytes written but not yet taken by the network

    @property
    def manager(self) -> SessionManager:
        manager: SessionManager = self.application.settings["manager"]
        return manager

    @property
    def client_id(self) -> str:
        return self.participant.client_id if self.participant else ""

    @property
    def display_name(self) -> str:
        return self.participant.display_name if self.participant else ""

    @property
    def role(self) -> str:
        return self.participant.role if self.participant else ""

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

    @property
    def closed(self) -> bool:
        return self.ws_connection is None or self.ws_connection.is_closing()

    async def _enter(self, session_id: str) -> Room | None:
        self.set_nodelay(True)
        try:
            self.room = await self.manager.room(session_id)
        except errors.SessionNotFound as exc:
            self.close(NOT_FOUND, exc.public[:120])
        except errors.SessionEnded as exc:
            self.close(ENDED, exc.public[:120])
        return self.room

    async def _join(self, room: Room, join: JoinSessionData) -> Participant:
        """Become a participant of ``room``."""
        participant = await self.manager.join(
            room, join.client_id, join.display_name, join.host_token, join.participant_token
        )
        if self.closed or self.room is None:
            # The client went away while it joined: on_close found no participant to remove.
            if room.depart(participant.client_id) is not None:
                self._record_left(room, participant)
            raise errors.InvalidValue("The connection closed while joining.")
        if participant.client_id in room.removed:
            # Removed while its join was saved: it does not stay.
            room.depart(participant.client_id)
            raise errors.ParticipantRemoved(
                f"Session {room.session_id}: {participant.client_id} was removed by the host."
            )
        self.participant = participant
        return participant

    def _write(self, message: str | bytes) -> None:
        """Send a message; close a client that has left too much unread (it reconnects and
        catches up, rather than the server holding its backlog in memory without end)."""
        if self.closed:
            return
        if self.buffered > self.max_buffered:
            log.warning(
                "session %s: closing the connection of %s: %d bytes sent to it are unread"
                " (WS_MAX_BUFFERED_BYTES is %d)",
                self.room.session_id if self.room else "?",
                self.client_id or "a client",
                self.buffered,
                self.max_buffered,
            )
            self.close(1008, "too many unread messages")
            return
        size = len(message)
        self.buffered += size
        metrics.WEBSOCKET_MESSAGES.labels(self.protocol, "out").inc()
        write = self.write_message(message, binary=isinstance(message, bytes))
        write.add_done_callback(lambda done: self._written(size, done))

    def _written(self, size: int, write: asyncio.Future[None]) -> None:
        self.buffered -= size
        # A write to a peer that went away fails; on_close handles the peer.
        if not write.cancelled():
            write.exception()

    async def _wait_turn(self) -> None:
        """Called first for every message received. Holds a client that sends too fast: its
        next message is read only after this, so it is slowed down by TCP's own flow control,
        and nothing it sent is lost."""
        metrics.WEBSOCKET_MESSAGES.labels(self.protocol, "in").inc()
        while (delay := self.throttle.delay()) > 0:
            self._throttled()
            await asyncio.sleep(delay)

    def _throttled(self) -> None:
        pass

    def _leave(self) -> None:
        """The connection closed: its participant leaves (now, so that its place is free
        for whoever comes next), and it lets go of the room."""
        room, self.room = self.room, None
        if room is None:
            return
        participant = self.participant
        left = room.depart(participant.client_id) if participant is not None else None
        self.manager.rooms.release(room)
        if left is not None:
            self._record_left(room, left)

    def _record_left(self, room: Room, participant: Participant) -> None:
        task = asyncio.ensure_future(self.manager.record_left(room.session_id, participant))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Tornado's own report names the whole URL, whose query may hold a host token.
        log.error(
            "uncaught exception on %s (query left out)",
            self.request.path,
            exc_info=(typ, value, tb),
        )


class YjsSocket(_SessionSocket):
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
            self.close(BAD_REQUEST, _problem(exc)[1][:120])
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
        room.yjs_peers.add(self)
        for message in room.greeting():
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
        self._leave()


class SessionSocket(_SessionSocket):
    """``/ws/sessions/{session_id}``: the original JSON protocol (SEED_API.md)."""

    protocol = "json"

    _told_throttled = 0.0

    async def open(self, session_id: str) -> None:
        await self._enter(session_id)

    def send_json(self, kind: str, data: dict[str, Any]) -> None:
        message = {"type": kind, "data": data, "timestamp": datetime.now(UTC).isoformat()}
        self._write(json.dumps(message))

    def error(self, code: str, message: str) -> None:
        self.send_json("error", {"code": code, "message": message})

    def _throttled(self) -> None:
        now = time.monotonic()
        if now - self._told_throttled >= 1.0:
            self._told_throttled = now
            limit = self.throttle.per_second
            self.error(
                "throttled",
                f"More than {limit} messages a second: kernelpad now reads this connection's"
                " messages more slowly (none is dropped).",
            )

    async def on_message(self, message: str | bytes) -> None:
        await self._wait_turn()
        if self.room is None or self.closed:
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
            self.error(exc.code, exc.public)
            self.close(FULL, "session full")
        except errors.SessionEnded as exc:
            self.error(exc.code, exc.public)
            self.close(ENDED, exc.public[:120])
        except errors.ParticipantRemoved as exc:
            self.error(exc.code, exc.public)
            self.close(FULL, exc.public[:120])
        except errors.KernelpadError as exc:
            self.error(exc.code, exc.public)

    async def _on_join_session(self, data: dict[str, Any]) -> None:
        room = self.room
        assert room is not None
        join = JoinSessionData.model_validate(data)
        if join.session_id is not None and join.session_id != room.session_id:
            raise errors.InvalidValue(
                f"session_id {join.session_id!r} is not this socket's session ({room.session_id})."
            )
        if self.participant is None:
            # A client_id the original protocol names without a token stays open to whoever
            # names it (as SEED_API.md has it); one registered with a token needs the token.
            await self._join(room, join)
            room.add_json_peer(self)
        elif join.client_id != self.participant.client_id:
            raise errors.InvalidValue(
                f"This connection has joined as {self.participant.client_id!r}; open another"
                " connection to join as someone else."
            )
        participants = room.participants()
        self.send_json(
            "session_state",
            {
                "session_id": room.session_id,
                "client_id": self.client_id,
                "role": self.role,
                "code": room.code,
                "language": room.document.language,
                "version": room.version,
                "kernels": self.manager.kernel_states(room.session_id),
                "inputs": room.open_inputs(),
                **room.rules(),
                "participant_count": len(participants),
                "participants": participants,
            },
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
            # The sender's own text of the cell, if it sent one: its last keystrokes may still
            # be on their way over the Yjs socket. Not while editing is locked for the sender:
            # then the cell runs as everyone sees it.
            own = request.code is not None and room.may_edit(self)
            code = request.code if own and request.code is not None else cell[0]
            language = request.language or cell[1]
        elif request.code is not None:
            code, language = request.code, request.language or room.document.language
        else:
            raise errors.InvalidValue("execute needs a cell_id, or code (and a language).")
        # The run goes on by itself: this socket keeps reading (an interrupt, input replies).
        # Whether this participant may run code at all, the manager checks (as for HTTP).
        task = asyncio.ensure_future(
            self._run_code(room, code, language, request.time_limit, request.cell_id)
        )
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _run_code(
        self, room: Room, code: str, language: str, time_limit: int | None, cell_id: str | None
    ) -> None:
        try:
            await self.manager.execute(
                room.session_id,
                code,
                language,
                time_limit,
                None,
                cell_id,
                self.role == "host",
                self.client_id,
            )
        except errors.KernelpadError as exc:
            self.error(exc.code, exc.public)
        except Exception:
            log.exception("session %s: a run from a socket failed", room.session_id)
            self.error("internal_error", "kernelpad hit an internal error; see its log.")

    def _check_may_run(self, room: Room) -> None:
        self.manager.check_may_run(room.session_id, self.role == "host")

    async def _on_interrupt(self, data: dict[str, Any]) -> None:
        room = self._joined("interrupt")
        self._check_may_run(room)
        request = KernelData.model_validate(data)
        if request.execution_id is not None:
            if not await self.manager.interrupt(
                room.session_id, request.language, request.execution_id
            ):
                self.error("not_running", f"The run {request.execution_id} is not running.")
            return
        language = request.language or room.document.language
        if not await self.manager.interrupt(room.session_id, language):
            self.error("not_running", f"No {language} code is running in this session.")

    async def _on_restart_kernel(self, data: dict[str, Any]) -> None:
        room = self._joined("restart_kernel")
        self._check_may_run(room)
        language = KernelData.model_validate(data).language or room.document.language
        await self.manager.restart_kernel(room.session_id, language)

    async def _on_input_reply(self, data: dict[str, Any]) -> None:
        room = self._joined("input_reply")
        self._check_may_run(room)
        reply = InputReplyData.model_validate(data)
        if not room.answer_input(reply.value, reply.execution_id):
            self.error("no_input_request", "No run is waiting for input.")

    async def _on_code_update(self, data: dict[str, Any]) -> None:
        room = self._joined("code_update")
        update = CodeUpdateData.model_validate(data)
        if not room.may_edit(self):
            raise errors.EditingLocked(
                f"Session {room.session_id}: the host has locked editing; the change was not made."
            )
        room.replace_code(self, update.code, update.base_version)

    def on_close(self) -> None:
        if self.room is not None:
            self.room.remove_json_peer(self)
        self._leave()


def _problem(exc: pydantic.ValidationError, kind: str | None = None) -> tuple[str, str]:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return "invalid_json", f"The message is not valid JSON: {first['msg']}."
    where = ".".join(str(part) for part in first["loc"]) or "message"
    prefix = f"{kind}: " if kind else ""
    return "validation_error", f"Invalid {prefix}{where}: {first['msg']}."
