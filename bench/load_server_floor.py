"""The least a server can do for ``load.py``'s interviews: the floor of its load through a server.

``load_floor.py`` runs ``load.py``'s code on bare kernels with nobody typing: what the kernels
alone give. An interview also has two people typing, and a server between them and the kernels:
woken by every edit and every run, on the same cores as the kernels. This server does only
what any collaborative notebook server must do for that, with ``load.py``'s own clients:

- ``/ws/yjs/ROOM``: a Yjs room (y-websocket's protocol, as kernelpad's). The room holds the
  notebook (one code cell, as a new session's) in a pycrdt document: a joining client's sync
  step 1 is answered with the document, and each update is applied to it and sent on to the
  room's other clients;
- ``/ws/sessions/ROOM``: runs over JSON (kernelpad's ``execute`` message): each output is sent
  as it comes, then ``execution_finished``, once the kernel's reply and idle status are in (and
  the done probe's marker, for a language that has one, as kernelpad settles a run). Each room's
  kernels are given by connection files ``ROOM-LANGUAGE.json`` in ``--kernels``, started by
  someone else.

No participants, no rules, no storage, no history: what kernelpad's runs take at each number of
interviews beyond what they take through this server is kernelpad's own.

With ``--store FILE`` it also keeps kernelpad's promise that what anyone has seen is on disk,
the least way it can be kept: each update is committed before the room's other clients get it,
and each run's record (its code, outputs and status) before its ``execution_finished``, in one
SQLite file (WAL, ``synchronous = NORMAL``, as kernelpad's) written by one thread; the writes
of one turn of the event loop, and those that come while the thread is busy, commit together.
No sessions table, no authors' rules, nothing stored that the promise does not need.
``load_floor.py --through-server [--stored]`` starts it and drives it:

    python bench/load_server_floor.py --port PORT --kernels DIR [--store FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from execute_latency import LANGUAGES
from harness import run_on_kernelpads_loop
from jupyter_ydoc import YNotebook
from pycrdt import Doc, YMessageType, handle_sync_message
from server_floor import RUN_TIMEOUT, Kernel, serve_until_stopped
from tornado import web, websocket

# What the durable floor keeps: every update (to load a room from) and every run's record.
SCHEMA = """
CREATE TABLE updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX updates_by_room ON updates (room, seq);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    language TEXT NOT NULL,
    code TEXT NOT NULL,
    outputs TEXT NOT NULL,
    status TEXT NOT NULL,
    finished_at REAL NOT NULL
);
"""

# A write: its statement, its arguments, and what to do once it is committed.
Write = tuple[str, tuple[Any, ...], Callable[[], None]]


class Record:
    """The durable floor's database: one connection, used by one thread of its own.

    The writes of one turn of the event loop go to the thread together, at the turn's end; the
    thread commits what it finds waiting in one transaction, and wakes the loop once for all
    of them, which then does what each write was waiting for, in order."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(SCHEMA)
        self.turn: list[Write] = []  # this turn's writes, not yet given to the thread
        self.batches: queue.SimpleQueue[list[Write] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="floor-database", daemon=True)
        self.thread.start()

    def write(self, sql: str, args: tuple[Any, ...], then: Callable[[], None]) -> None:
        if not self.turn:
            self.loop.call_soon(self._hand_over)
        self.turn.append((sql, args, then))

    def _hand_over(self) -> None:
        batch, self.turn = self.turn, []
        self.batches.put(batch)

    def _work(self) -> None:
        stopping = False
        while not stopping:
            batches = [self.batches.get()]
            while not self.batches.empty():  # what came while the thread was busy commits along
                batches.append(self.batches.get_nowait())
            stopping = None in batches
            batch = [write for writes in batches if writes is not None for write in writes]
            if batch:
                self.conn.execute("BEGIN")
                for sql, args, _ in batch:
                    self.conn.execute(sql, args)
                self.conn.execute("COMMIT")
                self.loop.call_soon_threadsafe(_committed, [then for _, _, then in batch])
        self.conn.close()

    def close(self) -> None:
        self._hand_over()
        self.batches.put(None)
        self.thread.join()


def _committed(waiting: list[Callable[[], None]]) -> None:
    for then in waiting:
        then()


class Room:
    """One interview's notebook and the Yjs clients editing it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.doc: Doc[Any] = Doc()
        notebook = YNotebook(self.doc)
        notebook.append_cell({"cell_type": "code", "source": "", "metadata": {}, "outputs": []})
        self.clients: set[YjsSocket] = set()


class YjsSocket(websocket.WebSocketHandler):
    room: Room

    def open(self, name: str) -> None:
        self.set_nodelay(True)
        rooms: dict[str, Room] = self.settings["rooms"]
        if name not in rooms:  # the first to join makes it: its notebook, for both typists
            rooms[name] = Room(name)
        self.room = rooms[name]
        self.room.clients.add(self)

    def on_message(self, message: str | bytes) -> None:
        if not isinstance(message, bytes) or message[0] != YMessageType.SYNC:
            return
        reply = handle_sync_message(message[1:], self.room.doc)
        if reply is not None:
            self.write_message(reply, binary=True)
        if message[1] == 2:  # an update: the others get it as it came
            record: Record | None = self.settings["record"]
            if record is None:
                self._relay(message)
            else:  # once it is on disk
                update = message[2:]  # after the message's two types: the update, sized
                record.write(
                    "INSERT INTO updates (room, data, created_at) VALUES (?, ?, ?)",
                    (self.room.name, update, time.time()),
                    lambda: self._relay(message),
                )

    def _relay(self, message: bytes) -> None:
        for client in self.room.clients:
            if client is not self:
                client.write_message(message, binary=True)

    def on_close(self) -> None:
        self.room.clients.discard(self)


class RunSocket(websocket.WebSocketHandler):
    name: str

    def open(self, name: str) -> None:
        self.set_nodelay(True)
        self.name = name

    async def on_message(self, message: str | bytes) -> None:
        data = json.loads(message)
        if data["type"] != "execute":
            return  # join_session: nobody's identity is checked here
        kernels: dict[str, Kernel] = self.settings["kernels"]
        kernel = kernels[f"{self.name}-{data['data']['language']}"]

        outputs: list[dict[str, Any]] = []

        def sent(output: dict[str, Any]) -> None:
            outputs.append(output)
            self.write_message({"type": "output", "data": output})

        code = data["data"]["code"]
        status = await kernel.run(code, sent)
        finished = {"type": "execution_finished", "data": {"status": status}}
        record: Record | None = self.settings["record"]
        if record is None:
            self.write_message(finished)
            return

        def tell() -> None:  # once its record is on disk, if the client is still there
            if self.ws_connection is not None:
                self.write_message(finished)

        record.write(
            "INSERT INTO runs (room, language, code, outputs, status, finished_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (self.name, data["data"]["language"], code, json.dumps(outputs), status, time.time()),
            tell,
        )


async def serve(port: int, folder: Path, store: Path | None) -> None:
    kernels = {}
    for connection_file in sorted(folder.glob("*-*.json")):
        language = connection_file.stem.rsplit("-", 1)[1]
        kernels[connection_file.stem] = Kernel(str(connection_file), LANGUAGES[language].done_probe)
    for kernel in kernels.values():
        kernel.kc.start_channels()
    await asyncio.gather(*(k.kc.wait_for_ready(timeout=RUN_TIMEOUT) for k in kernels.values()))
    app = web.Application(
        [(r"/ws/yjs/([^/]+)", YjsSocket), (r"/ws/sessions/([^/]+)", RunSocket)],
        kernels=kernels,
        rooms={},
        record=None if store is None else Record(store, asyncio.get_running_loop()),
        websocket_max_message_size=1 << 20,
    )
    await serve_until_stopped(app, port)
    for kernel in kernels.values():
        kernel.kc.stop_channels()
    if app.settings["record"] is not None:
        app.settings["record"].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kernels", type=Path, required=True, help="their connection files")
    parser.add_argument(
        "--store", type=Path, help="a new SQLite file: store each update and run before it is seen"
    )
    args = parser.parse_args()
    run_on_kernelpads_loop(serve(args.port, args.kernels, args.store))


if __name__ == "__main__":
    main()
