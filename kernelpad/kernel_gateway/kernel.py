"""A kernel on a gateway, driven over its channels WebSocket (Jupyter Server's JSON protocol:
each message carries its ``channel``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from tornado.websocket import WebSocketClientConnection, websocket_connect

from kernelpad.kernel_gateway.client import GatewayClient
from kernelpad.kernels.base import MAX_CONTENT_SIZE, KernelHandle, Message
from kernelpad.kernels.languages import InstalledLanguage

log = logging.getLogger(__name__)

# Reconnections tried when the channels socket drops, and the pause before each.
RECONNECTS = (0.2, 1.0, 3.0)
LOST_OUTPUT = (
    "\n[kernelpad: the connection to the kernel gateway dropped during this run and was"
    " made again; output sent meanwhile may be missing]\n"
)


class GatewayKernel(KernelHandle):
    """A kernel the gateway runs; messages of the current request are kept in one inbox."""

    def __init__(self, kernel_id: str, language: InstalledLanguage, client: GatewayClient) -> None:
        self.kernel_id = kernel_id
        self.language = language
        self.language_info: dict[str, Any] = {}
        self._client = client
        self._session = Session(username="kernelpad")
        self._socket: WebSocketClientConnection | None = None
        self._inbox: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
        self._current: str | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self._lost = False

    async def connect(self) -> None:
        """Open the channels socket and start reading it."""
        self._socket = await websocket_connect(self._client.websocket_request(self.kernel_id))
        stream = self._socket.stream
        if stream is not None:
            # Small frames both ways: without this each one waits ~40 ms for Nagle.
            stream.set_nodelay(True)
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while not self._closed:
            socket = self._socket
            raw = await socket.read_message() if socket is not None else None
            if raw is None:
                if self._closed or not await self._reconnect():
                    self._lost = True
                    return
                continue
            self._deliver(raw if isinstance(raw, str) else raw.decode(errors="replace"))

    def _deliver(self, raw: str) -> None:
        try:
            msg = json.loads(raw)
            channel = msg.pop("channel", "")
            if not self._current or msg["parent_header"].get("msg_id") != self._current:
                return
        except (ValueError, KeyError, AttributeError, TypeError):
            log.warning("kernel %s: dropped a malformed message from the gateway", self.kernel_id)
            return
        msg["content_size"] = len(raw)
        msg["content_dropped"] = len(raw) > MAX_CONTENT_SIZE
        if msg["content_dropped"]:
            msg["content"] = {}
        self._inbox.put_nowait((channel, msg))

    async def _reconnect(self) -> bool:
        for pause in RECONNECTS:
            await asyncio.sleep(pause)
            if self._closed:
                return False
            try:
                self._socket = await websocket_connect(
                    self._client.websocket_request(self.kernel_id)
                )
            except Exception:
                continue
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
                self._inbox.put_nowait(("iopub", notice))
            return True
        return False

    def _send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg = self._session.msg(msg_type, content)
        msg["channel"] = channel
        if self._socket is not None:
            self._socket.write_message(json.dumps(msg, default=json_default))
        return str(msg["header"]["msg_id"])

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
        self._current = str(msg["header"]["msg_id"])
        msg["channel"] = "shell"
        if self._socket is not None:
            self._socket.write_message(json.dumps(msg, default=json_default))
        return self._current

    def input_reply(self, value: str) -> None:
        self._send("stdin", "input_reply", {"value": value})

    def end_request(self) -> None:
        self._current = None
        while not self._inbox.empty():
            self._inbox.get_nowait()

    async def receive(self, timeout: float) -> tuple[str, Message] | None:
        try:
            return self._inbox.get_nowait()
        except asyncio.QueueEmpty:
            pass
        try:
            async with asyncio.timeout(timeout):
                return await self._inbox.get()
        except TimeoutError:
            return None

    async def request(self, msg_type: str, content: dict[str, Any], timeout: float) -> Message:
        """Send a shell request and wait for its reply (used at start: ``kernel_info``, and
        the language's silent start-up code)."""
        msg = self._session.msg(msg_type, content)
        self._current = str(msg["header"]["msg_id"])
        msg["channel"] = "shell"
        assert self._socket is not None
        self._socket.write_message(json.dumps(msg, default=json_default))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    channel, reply = await self._inbox.get()
                    if channel == "shell":
                        return reply
        finally:
            self.end_request()

    async def is_alive(self) -> bool:
        return not self._closed and not self._lost and await self._client.exists(self.kernel_id)

    async def interrupt(self) -> None:
        await self._client.interrupt(self.kernel_id)

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._socket is not None:
            self._socket.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        try:
            await self._client.delete(self.kernel_id)
        except Exception:
            log.warning("kernel %s: the gateway did not shut it down", self.kernel_id)
