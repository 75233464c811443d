"""A kernel on a gateway, driven over its channels WebSocket (Jupyter Server's JSON protocol:
each message carries its ``channel``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket as socket_module
from typing import Any

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from tornado.httpclient import HTTPClientError
from tornado.iostream import IOStream
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from kernelpad.kernel_gateway.client import GatewayClient
from kernelpad.kernels.base import MAX_CONTENT_SIZE, Inbox, KernelHandle, Message
from kernelpad.kernels.languages import InstalledLanguage

log = logging.getLogger(__name__)

# Reconnections tried when the channels socket drops, and the pause before each.
RECONNECTS = (0.2, 1.0, 3.0)
# Seconds between asking the gateway whether a kernel still exists.
LIVENESS_INTERVAL = 5.0
# Largest frame taken from the gateway: larger content is dropped (MAX_CONTENT_SIZE) anyway,
# but a frame over the limit would close the socket.
MAX_MESSAGE_SIZE = 8 * MAX_CONTENT_SIZE
LOST_OUTPUT = (
    "\n[kernelpad: the connection to the kernel gateway dropped during this run and was"
    " made again; output sent meanwhile may be missing]\n"
)


def _ignore_closed(write: asyncio.Future[None]) -> None:
    # A write to a socket that went away: the reader notices, and reconnects.
    if not write.cancelled():
        write.exception()


def acknowledge_at_once(stream: IOStream) -> None:
    """Acknowledge what the gateway sends as it arrives (``TCP_QUICKACK``), not up to 40 ms
    later. A stock gateway does not turn Nagle off on its kernels' WebSockets, so it holds a
    message's second segment until the first is acknowledged; Linux delays that
    acknowledgement, and every reply took 40 ms more. Linux leaves quick-ack mode again as it
    sees fit, so it is asked for before every read of the socket."""
    sock = stream.socket
    if not hasattr(socket_module, "TCP_QUICKACK") or sock is None:
        return
    read = stream.read_from_fd

    def quick_ack() -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket_module.IPPROTO_TCP, socket_module.TCP_QUICKACK, 1)

    def read_acknowledging(buf: bytearray | memoryview) -> int | None:
        quick_ack()
        return read(buf)

    stream.read_from_fd = read_acknowledging  # type: ignore[method-assign]
    quick_ack()


class GatewayKernel(KernelHandle):
    """A kernel the gateway runs; messages of the current request are kept in one inbox."""

    def __init__(self, kernel_id: str, language: InstalledLanguage, client: GatewayClient) -> None:
        self.kernel_id = kernel_id
        self.language = language
        self.language_info: dict[str, Any] = {}
        self._client = client
        self._session = Session(username="kernelpad")
        self._socket: WebSocketClientConnection | None = None
        self._inbox = Inbox()
        self._current: str | None = None
        self._kept: tuple[str, ...] = ()  # requests before the current one, still wanted
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self._lost = False
        self._outbox: list[str] = []  # sent while the socket was down
        self._checked = 0.0  # when the gateway was last asked whether the kernel exists

    async def connect(self) -> None:
        """Open the channels socket and start reading it."""
        self._socket = await self._open()
        self._pump = asyncio.create_task(self._read())

    async def _open(self) -> WebSocketClientConnection:
        # The same session id on every connection: the server then gives a reconnection the
        # same ZeroMQ identity, so replies to requests sent before it still reach us.
        request = self._client.websocket_request(self.kernel_id, self._session.session)
        socket = await websocket_connect(request, max_message_size=MAX_MESSAGE_SIZE)
        if socket.stream is not None:
            # Small frames both ways: without this each one waits ~40 ms for Nagle.
            socket.stream.set_nodelay(True)
            acknowledge_at_once(socket.stream)
        return socket

    async def _read(self) -> None:
        while not self._closed:
            socket = self._socket
            raw = await socket.read_message() if socket is not None else None
            if raw is None:
                if self._closed or not await self._reconnect():
                    self._lost = True
                    return
                continue
            if isinstance(raw, bytes):
                # Messages with buffers (comms, widgets) come as binary frames: nothing a run's
                # result needs.
                log.debug("kernel %s: skipped a binary frame", self.kernel_id)
                continue
            self._deliver(raw)

    def _deliver(self, raw: str) -> None:
        try:
            msg = json.loads(raw)
            channel = msg.pop("channel", "")
            if channel == "iopub" and not msg["parent_header"]:
                state = msg.get("content", {}).get("execution_state")
                if state in ("restarting", "dead"):
                    # The gateway restarted the kernel (it died): its state is gone.
                    log.warning("kernel %s: the gateway says it is %s", self.kernel_id, state)
                    self._lost = True
                    return
            parent = msg["parent_header"].get("msg_id")
            if not parent or (parent != self._current and parent not in self._kept):
                return
        except (ValueError, KeyError, AttributeError, TypeError):
            log.warning("kernel %s: dropped a malformed message from the gateway", self.kernel_id)
            return
        msg["content_size"] = len(raw)
        msg["content_dropped"] = len(raw) > MAX_CONTENT_SIZE
        if msg["content_dropped"]:
            msg["content"] = {}
        self._inbox.put(channel, msg)

    async def _reconnect(self) -> bool:
        for pause in RECONNECTS:
            await asyncio.sleep(pause)
            if self._closed:
                return False
            try:
                self._socket = await self._open()
            except HTTPClientError as exc:
                if exc.code == 404:  # the gateway no longer has the kernel (culled, say)
                    return False
                continue
            except Exception:
                continue
            for message in self._outbox:
                self._socket.write_message(message)
            self._outbox.clear()
            log.warning("kernel %s: its gateway socket dropped; reconnected", self.kernel_id)
            if self._current:
                # Said where the run's output goes: what came meanwhile is not known.
                notice = {
                    "header": {"msg_type": "stream", "msg_id": ""},
                    "msg_type": "stream",
                    "parent_header": {"msg_id": self._current},
                    "content": {"name": "stderr", "text": LOST_OUTPUT},
                    "content_size": len(LOST_OUTPUT),
                    "content_dropped": False,
                }
                self._inbox.put("iopub", notice)
            return True
        return False

    def _send(self, channel: str, msg: dict[str, Any]) -> None:
        """Send a message, or keep it for when a dropped socket is back."""
        msg["channel"] = channel
        text = json.dumps(msg, default=json_default)
        socket = self._socket
        try:
            if socket is None:
                raise WebSocketClosedError()
            socket.write_message(text).add_done_callback(_ignore_closed)
        except WebSocketClosedError:
            self._outbox.append(text)

    def execute_request(self, code: str) -> str:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": True,
            "stop_on_error": True,
        }
        # The id is known before the request leaves, so no reply can come before it is current.
        msg = self._session.msg("execute_request", content)
        self._current, self._kept = str(msg["header"]["msg_id"]), ()
        self._send("shell", msg)
        return self._current

    def input_reply(self, value: str) -> None:
        self._send("stdin", self._session.msg("input_reply", {"value": value}))

    def end_request(self) -> None:
        self._current, self._kept = None, ()
        self._inbox.clear()

    async def receive(self, timeout: float) -> tuple[str, Message] | None:
        return await self._inbox.next(timeout)

    def send_request(
        self, msg_type: str, content: dict[str, Any], keep_current: bool = False
    ) -> str:
        msg = self._session.msg(msg_type, content)
        self._kept = (*self._kept, self._current) if keep_current and self._current else ()
        self._current = str(msg["header"]["msg_id"])
        self._send("shell", msg)
        return self._current

    async def is_alive(self) -> bool:
        """Decided here (the socket and what the gateway said on it); the gateway is asked
        only every few seconds, and only its "no such kernel" counts as dead: one slow or
        failed request must not cost a session its kernel."""
        if self._closed or self._lost or (self._pump is not None and self._pump.done()):
            return False
        now = asyncio.get_running_loop().time()
        if now - self._checked >= LIVENESS_INTERVAL:
            self._checked = now
            if await self._client.exists(self.kernel_id) is False:
                self._lost = True
        return not self._lost

    async def interrupt(self) -> None:
        await self._client.interrupt(self.kernel_id)

    async def detach(self) -> None:
        """Close the channels; the kernel stays on the gateway for a later server."""
        if self._closed:
            return
        self._closed = True
        await self._close_channels()

    async def _close_channels(self) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._close_channels()
        try:
            await self._client.delete(self.kernel_id)
        except Exception:
            log.warning("kernel %s: the gateway did not shut it down", self.kernel_id)
