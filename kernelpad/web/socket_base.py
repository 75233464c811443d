"""What a session's two WebSocket endpoints share (:mod:`.yjs_socket`, :mod:`.json_socket`):
entering the room as a participant, throttling, cutting off a client that does not read.

Both call ``set_nodelay(True)``: their messages are small and frequent, and Nagle's algorithm
would hold each one back about 40 ms. Bad input gets an ``error`` message and the connection
stays open (a frame that is not valid Yjs closes the Yjs connection with 1002, protocol error);
messages over ``max_request_size`` close with 1009 (Tornado's own limit). Every refusal is
logged as :mod:`.refusals` says, naming the session and the participant.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

import pydantic
import tornado.websocket

from kernelpad import errors, metrics
from kernelpad.sessions.manager import SESSION_ENDED_CLOSE, SESSION_MOVED_CLOSE, SessionManager
from kernelpad.sessions.models import Participant
from kernelpad.sessions.room.room import Room
from kernelpad.web.base import status_of
from kernelpad.web.messages import JoinSessionData
from kernelpad.web.refusals import Who, log_refusal

log = logging.getLogger(__name__)

# Tasks started by a closing socket, kept until done.
pending: set[asyncio.Future[None]] = set()

# Close codes, in the range applications own.
BAD_REQUEST = 4400
UNAUTHORIZED = 4401  # a ticket that is not good (unknown, used, expired, another's)
NOT_FOUND = 4404
FULL = 4403
# A Yjs change the server could not merge (the room logged it): the page loads the notebook anew.
NOT_MERGED = 4409
MOVING = SESSION_MOVED_CLOSE  # try again: y-websocket and the pad reconnect
ENDED = SESSION_ENDED_CLOSE
# A throttled connection is logged once, then at most this often (seconds).
THROTTLE_LOG_INTERVAL = 10.0


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


class SessionSocketBase(tornado.websocket.WebSocketHandler):
    """What both sockets share: entering a session's room as a participant, throttling what
    a client sends, and cutting off a client that does not read what it is sent."""

    room: Room | None = None
    participant: Participant | None = None
    protocol = ""  # for /metrics: "yjs" or "json"
    #: What the socket is called in the log.
    name = ""

    def initialize(self) -> None:
        settings = self.application.settings["kernelpad"]
        self.throttle = _Throttle(settings.ws_messages_per_second)
        self.max_buffered = settings.ws_max_buffered_bytes
        self.buffered = 0  # bytes written but not yet taken by the network
        self.claimed = ""  # the client_id it asked to join as, before it is a participant
        self._throttle_logged = -THROTTLE_LOG_INTERVAL
        # Its counters in /metrics, found once: every message counts one, and finding a
        # labelled counter (its lock, its dictionary) cost as much as counting.
        self._messages_in = metrics.WEBSOCKET_MESSAGES.labels(self.protocol, "in")
        self._messages_out = metrics.WEBSOCKET_MESSAGES.labels(self.protocol, "out")

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        # Tornado makes its protocol itself, with settings of its own; only the close is
        # changed (see _Protocol), so the class is swapped rather than the protocol remade.
        protocol = super().get_websocket_protocol()
        if isinstance(protocol, tornado.websocket.WebSocketProtocol13):
            protocol.__class__ = _Protocol
        return protocol

    # The log

    def who(self) -> Who:
        session_id = self.room.session_id if self.room else self.path_kwargs.get("session_id")
        return Who(
            session_id,
            self.client_id or self.claimed or None,
            self.role or None,
            self.request.remote_ip,
        )

    def refused(self, what: str, status: int, code: str, message: str) -> None:
        """Log a refusal of this connection's (see :mod:`.refusals`)."""
        log_refusal(log, self.who(), f"{what} on the {self.name} socket", status, code, message)

    def refused_error(self, what: str, exc: errors.KernelpadError) -> None:
        self.refused(what, status_of(exc), exc.code, exc.message)

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
        # connect; other tools (no Origin) may too. (The Host itself was checked before the
        # request was routed: see hosts.py.)
        allowed = self.application.settings["kernelpad"].cors_origins
        host = self.request.headers.get("Host", "")
        if (
            "*" in allowed
            or origin.rstrip("/") in (o.rstrip("/") for o in allowed)
            or origin.split("://", 1)[-1] == host
        ):
            return True
        self.refused(
            "a connection",
            403,
            "cors_origin",
            f"Origin {origin!r} is neither {host!r} nor in CORS_ORIGINS",
        )
        return False

    @property
    def closed(self) -> bool:
        return self.ws_connection is None or self.ws_connection.is_closing()

    async def _enter(self, session_id: str) -> Room | None:
        self.set_nodelay(True)
        try:
            self.room = await self.manager.room(session_id)
        except errors.SessionNotFound as exc:
            self.close_refused("a connection", NOT_FOUND, exc)
        except errors.SessionEnded as exc:
            self.close_refused("a connection", ENDED, exc)
        except errors.SessionElsewhere as exc:
            self.close_refused("a connection", MOVING, exc)
        return self.room

    def close_refused(
        self, what: str, code: int, exc: errors.KernelpadError, reason: str | None = None
    ) -> None:
        """Close with ``code`` and ``reason`` (default: the error's message), and log the
        refusal."""
        self.refused(what, status_of(exc), exc.code, f"{exc.message} (closed with {code})")
        self.close(code, (reason or exc.public)[:120])

    async def _join(self, room: Room, join: JoinSessionData) -> Participant:
        """Become a participant of ``room``."""
        self.claimed = join.client_id
        participant = await self.manager.participants.join(
            room, join.client_id, join.display_name, join.host_token, join.participant_token
        )
        if self.closed or self.room is None:
            # The client went away while it joined: on_close found no participant to remove.
            if room.depart(participant.client_id) is not None:
                self._record_left(room, participant)
            raise errors.InvalidValue("The connection closed while joining.")
        try:
            room.check_not_removed(participant.client_id)
        except errors.ParticipantRemoved:
            # Removed while its join was saved: it does not stay.
            room.depart(participant.client_id)
            raise
        self.participant = participant
        return participant

    def _write(self, message: str | bytes) -> None:
        """Send a message; close a client that has left too much unread (it reconnects and
        catches up, rather than the server holding its backlog in memory without end)."""
        if self.closed:
            return
        if self.buffered > self.max_buffered:
            self.refused(
                "more messages",
                429,
                "too_many_unread",
                f"{self.buffered} bytes sent to it are unread (WS_MAX_BUFFERED_BYTES is"
                f" {self.max_buffered}); closed with 1008",
            )
            self.close(1008, "too many unread messages")
            return
        size = len(message)
        self.buffered += size
        self._messages_out.inc()
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
        await self._wait(self._turn())

    def _turn(self) -> float:
        """A message received: 0 if it may be handled now (it is counted), else how long it
        must wait first (:meth:`_wait`)."""
        self._messages_in.inc()
        return self.throttle.delay()

    async def _wait(self, delay: float) -> None:
        """Wait until a message :meth:`_turn` held ``delay`` seconds may be handled."""
        while delay > 0:
            self._throttled()
            await asyncio.sleep(delay)
            delay = self.throttle.delay()

    def _throttled(self) -> None:
        """The client sends faster than WS_MESSAGES_PER_SECOND: logged once, then every
        :data:`THROTTLE_LOG_INTERVAL` seconds while it goes on."""
        now = time.monotonic()
        if now - self._throttle_logged >= THROTTLE_LOG_INTERVAL:
            self._throttle_logged = now
            limit = self.throttle.per_second
            self.refused(
                "messages",
                429,
                "throttled",
                f"more than {limit} messages a second (WS_MESSAGES_PER_SECOND): its messages are"
                " read more slowly",
            )

    def _too_big(self) -> None:
        limit = self.application.settings["kernelpad"].max_request_size
        message = f"a message over {limit} bytes (MAX_REQUEST_SIZE); closed with 1009"
        self.refused("a message", 413, "message_too_big", message)

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
        task = asyncio.ensure_future(self.manager.participants.left(room.session_id, participant))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Tornado's own report names the whole URL, whose query may hold a host token.
        log.error(
            "uncaught exception on %s (query left out)",
            self.request.path,
            exc_info=(typ, value, tb),
        )


class _Protocol(tornado.websocket.WebSocketProtocol13):
    """Tornado's protocol, telling the handler of a message over the size limit: Tornado
    closes the connection itself (1009), and would otherwise say nothing of it."""

    handler: SessionSocketBase

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == 1009 and not self.server_terminated:
            self.handler._too_big()
        super().close(code, reason)


def problem(exc: pydantic.ValidationError, kind: str | None = None) -> tuple[str, str]:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return "invalid_json", f"The message is not valid JSON: {first['msg']}."
    where = ".".join(str(part) for part in first["loc"]) or "message"
    prefix = f"{kind}: " if kind else ""
    return "validation_error", f"Invalid {prefix}{where}: {first['msg']}."
