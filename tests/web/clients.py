"""Clients of a session's two sockets, for tests: the original JSON protocol, and Yjs with a
pycrdt document of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import Iterable
from typing import Any, Protocol, Self

from jupyter_ydoc import YNotebook
from pycrdt import (
    Awareness,
    Doc,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect


class Server(Protocol):
    """What the clients need of a kernelpad server: where it is. A RunningServer in the
    tests' own process, a ServerProcess, or nginx in front of several."""

    @property
    def base_url(self) -> str: ...


def first_cell(updates: Iterable[bytes]) -> dict[str, Any]:
    """The first cell of the notebook that stored updates make ({} if it has none)."""
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    cells = YNotebook(doc).get()["cells"]
    return dict(cells[0]) if cells else {}


def first_source(updates: Iterable[bytes]) -> str:
    """The first cell's source of the notebook that stored updates make."""
    return str(first_cell(updates).get("source", ""))


def ws_url(server: Server, path: str) -> str:
    return server.base_url.replace("http://", "ws://") + path


async def hang_up(conn: WebSocketClientConnection) -> None:
    """Close ``conn`` and wait until the server has too: a socket left closing when a module's
    event loop ends is reported unclosed, later, in another test."""
    protocol = conn.protocol
    conn.close()
    if protocol is None:
        return
    for _ in range(1000):
        stream = protocol.stream
        assert stream is not None, "a connected client's protocol has its stream"
        if stream.closed():
            return
        # Tornado's client reads no further frame (the server's close among them) while a
        # message it has read waits to be taken.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(conn.read_message(), 0.01)


class JsonClient:
    """A client of the original JSON protocol."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn

    @classmethod
    async def join(
        cls, server: Server, session_id: str, client_id: str, name: str
    ) -> tuple[JsonClient, dict[str, Any]]:
        return await cls.join_with(server, session_id, client_id, name, None)

    @classmethod
    async def join_with(
        cls, server: Server, session_id: str, client_id: str, name: str, token: str | None
    ) -> tuple[JsonClient, dict[str, Any]]:
        conn = await websocket_connect(ws_url(server, f"/ws/sessions/{session_id}"))
        client = cls(conn)
        data = {"session_id": session_id, "client_id": client_id, "display_name": name}
        await client.send("join_session", {**data, **({"host_token": token} if token else {})})
        state = await client.expect("session_state")
        return client, state

    async def send(self, kind: str, data: dict[str, Any]) -> None:
        await self.conn.write_message(json.dumps({"type": kind, "data": data}))

    async def receive(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.read_message(), 10)
        assert raw is not None, f"closed: {self.conn.close_code} {self.conn.close_reason}"
        message: dict[str, Any] = json.loads(raw)
        assert set(message) == {"type", "data", "timestamp"}
        return message

    async def expect(self, kind: str) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if message["type"] == kind:
                return message["data"]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.conn.close()

    async def aclose(self) -> None:
        """Close, and wait for the server's side of it: a test that ends first leaves the
        socket open until the garbage collector finds it, in some later test."""
        self.conn.close()
        while await asyncio.wait_for(self.conn.read_message(), 10) is not None:
            pass


class YjsClient:
    """A Yjs client speaking the y-websocket protocol, with its own pycrdt document."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.doc: Doc[Any] = Doc()
        self._reader = asyncio.ensure_future(self._read())
        self._subscription = self.doc.observe(self._send_local)
        self._applying = False
        # Who else is here, as the awareness messages this client received say.
        self.others = Awareness(Doc())

    @classmethod
    async def connect(cls, server: Server, session_id: str, **params: str) -> Self:
        """Connect, named by ``params`` (``client_id``, ``display_name``, ``host_token``) as
        y-websocket's ``params`` option would."""
        return await cls.connect_url(server.base_url, session_id, **params)

    @classmethod
    async def connect_url(cls, base_url: str, session_id: str, **params: str) -> Self:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = base_url.replace("http://", "ws://") + f"/ws/yjs/{session_id}{query}"
        conn = await websocket_connect(url)
        client = cls(conn)
        await conn.write_message(create_sync_message(client.doc), binary=True)
        return client

    async def _read(self) -> None:
        while True:
            message = await self.conn.read_message()
            if message is None:
                return
            assert isinstance(message, bytes)
            if message[0] == YMessageType.AWARENESS:
                self.others.apply_awareness_update(read_message(message[1:]), "server")
            if message[0] == YMessageType.SYNC:
                self._applying = True
                try:
                    reply = handle_sync_message(message[1:], self.doc)
                finally:
                    self._applying = False
                if reply is not None:
                    await self.conn.write_message(reply, binary=True)

    def _send_local(self, event: Any) -> None:
        if not self._applying:
            asyncio.ensure_future(self._send(create_update_message(event.update)))

    async def _send(self, message: bytes) -> None:
        with contextlib.suppress(WebSocketClosedError):
            await self.conn.write_message(message, binary=True)

    @property
    def source(self) -> str:
        cells = YNotebook(self.doc).get()["cells"]
        return str(cells[0]["source"]) if cells else ""

    @property
    def cell_count(self) -> int:
        return len(YNotebook(self.doc).get()["cells"])

    def insert(self, index: int, text: str) -> None:
        YNotebook(self.doc).ycells[0]["source"].insert(index, text)

    async def close(self) -> None:
        self.conn.close()
        await asyncio.gather(self._reader, return_exceptions=True)
