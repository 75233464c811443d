"""How fast an edit in a shared notebook reaches every participant, next to a bare broadcast
and to JupyterLab's own collaboration server.

kernelpad shares a session's notebook over Yjs (``/ws/yjs/{session_id}``, the y-websocket
protocol): every update a participant sends is applied to the server's document, stored in
SQLite and sent to every other participant. In an interview everyone watches the same code, so
what matters is how long an edit takes to reach the *last* participant, and how many edits per
second the server can pass on, as the number of participants grows. This benchmark measures, for
one writer and N readers (``--readers``, default 10, 50 and 100) on one session:

1. Latency, paced: the writer appends a short unique marker (``~000123~``) to the first cell's
   source, ``--edits`` times at ``--rate`` edits per second; per edit, the time until the last
   reader has it (median and p99 over the edits), and the time to each reader (all
   reader-edit pairs).
2. Throughput, sustained: the writer edits as fast as it can for ``--sustain`` seconds, with at
   most ``--window`` edits in flight (sent but not yet at every reader), and the benchmark counts
   the edits per second that reached every reader.
3. The floor: the same client code, sending the same Yjs update messages, against a bare Tornado
   WebSocket server that only relays every binary message to every other connection (with
   ``set_nodelay(True)``, as kernelpad). It runs in a subprocess of its own
   (``python bench/fanout.py --floor-server PORT``). The ratio kernelpad / floor is what kernelpad
   (pycrdt, the document, SQLite) adds to the cost of Tornado fanning bytes out.
4. The peer: JupyterLab's own real-time collaboration server (jupyter-collaboration, that is
   ``jupyter_server_ydoc`` on Jupyter Server 2), from a virtualenv of its own
   (``bench/.peers-venv``, made with pip on first use: its pins are not kernelpad's), at its
   defaults, in a subprocess, logging warnings only as kernelpad does. Each reader count gets a
   new notebook file with the cells of a new kernelpad session, opened as JupyterLab opens one
   (``PUT /api/collaboration/session/<path>``, then the room
   ``/api/collaboration/room/json:notebook:<file id>``); the same clients send the same edits
   to the same document shape (jupyter_ydoc's YNotebook). Printed: kernelpad / JupyterLab for
   the last reader's median and p99, the sustained edits/s and the server's CPU per edit.
   ``--no-peers`` leaves it out; if the virtualenv cannot be made, the run says why and
   measures the other two.

An edit "reaches" a reader when the reader's WebSocket delivers the message holding its marker;
each reader applies the messages to its own pycrdt document afterwards, outside the timed path,
and the benchmark then checks that every reader's text equals the writer's (lost or garbled
updates would show there, and as edits that never arrived).

All clients (the writer and every reader) live in this one asyncio process, so with 100 readers
the client side itself costs CPU, on the same machine as the server; the output shows the CPU the
client process and the server used in each phase. The figures are printed and written to
``bench/results/fanout.json``; targets are reported in words, never as a failure.

JupyterLab's server stores every update in SQLite in a transaction of its own, behind the
fan-out, and saves the notebook file ``document_save_delay`` (1 s) after the last edit: after the
sustained phase the benchmark waits until each server is idle before the next is measured, and
counts the CPU of that queued work in the server's CPU per edit.

Run it with ``.venv/bin/python bench/fanout.py [--readers 10,50,100] [--edits 200]
[--no-peers]``; ``--setup-peers`` only makes the peers' virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pycrdt
import tornado
import tornado.web
import tornado.websocket
from harness import (
    PEERS_REQUIREMENTS,
    BenchError,
    free_port,
    jupyter_environment,
    jupyter_server_command,
    kernelpad_command,
    log_tail,
    machine_info,
    peers_python,
    run_on_kernelpads_loop,
    stop_process,
    verdict,
)
from jupyter_ydoc import YNotebook
from pycrdt import (
    Doc,
    Text,
    TransactionEvent,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

# Every reader and the writer is a participant of the session.
MAX_PARTICIPANTS = 1000
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "fanout.json"
P99_TARGET_MS = 20.0  # kernelpad, last reader, at TARGET_READERS readers (issue 20: < 20 ms)
TARGET_READERS = 50
FLOOR_TARGET = 2.0  # kernelpad / floor, median and p99 of the last reader's latency
SERVER_START_TIMEOUT = 60.0
QUEUE_LIMIT = 300.0  # seconds a server may stay busy after the sustained phase
SAVE_WAIT = 10.0  # seconds for JupyterLab's server to save the notebook after the last edit
CODE_WAIT = 3.0  # seconds for kernelpad's code column to catch up with the document (about 1.2 s)
DELIVERY_TIMEOUT = 10.0  # seconds after the last edit of a phase before what is missing is lost
MARKER = re.compile(rb"~(\d{6})~")
# kernelpad's log lines look like "2026-11-26 20:30:52,714 WARNING kernelpad.x: ..."
LOG_PROBLEM = re.compile(r"^\d{4}-\d\d-\d\d \S+ (WARNING|ERROR|CRITICAL) |Traceback")
# Jupyter Server's look like "[W 2026-12-02 12:00:00.123 ServerApp] ...". Two are expected: its
# stop on SIGTERM, and the warning that the notebook (no signature, no outputs) is not trusted.
JUPYTER_LOG_PROBLEM = re.compile(
    r"^\[[WEC] \d{4}-\S+ \S+ \S+\] (?!received signal 15|Notebook \S+ is not trusted)|Traceback"
)
SYNC_STEP1 = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP1])
SYNC_STEP2 = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2])


def marker(number: int) -> str:
    return f"~{number:06d}~"


# The floor: a bare Tornado WebSocket broadcast


class BroadcastHandler(tornado.websocket.WebSocketHandler):
    """Relays every binary message to every other connection, and does nothing else."""

    peers: set[BroadcastHandler] = set()

    def open(self, *args: str) -> None:
        self.set_nodelay(True)
        self.peers.add(self)

    def on_message(self, message: str | bytes) -> None:
        if not isinstance(message, bytes):
            return
        for peer in list(self.peers):
            connection = peer.ws_connection
            if peer is not self and connection is not None and not connection.is_closing():
                peer.write_message(message, binary=True)

    def on_close(self) -> None:
        self.peers.discard(self)


async def serve_floor(port: int) -> None:
    """The floor server, on ``port``, with kernelpad's WebSocket settings; runs until killed."""
    app = tornado.web.Application(
        [(r"/ws/yjs/([^/]+)/?$", BroadcastHandler)],
        websocket_ping_interval=20,
        websocket_max_message_size=1_048_576,
    )
    app.listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


# Servers in subprocesses


@dataclass
class Server:
    """A server in a subprocess: kernelpad, the floor or JupyterLab's."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path  # its data folder and log
    problem_pattern: re.Pattern[str] = LOG_PROBLEM  # its log lines worth reporting
    token: str = ""  # JupyterLab's: its API wants one
    problems: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, session_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/yjs/{session_id}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"the {self.name} server exited with code {self.proc.returncode}; its log ends:\n"
                + log_tail(self.log_path)
            )


async def wait_until(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def kernelpad_answers(server: Server) -> bool:
    server.check_alive()
    try:
        response = await AsyncHTTPClient().fetch(
            server.base_url + "/api/v1/health", raise_error=False, request_timeout=2
        )
    except OSError:
        return False
    return response.code == 200


async def gc_pauses(server: Server) -> dict[str, float]:
    """kernelpad's garbage collections so far, from its ``/metrics``: full (generation 2)
    collections, their total pause and the longest of any generation, in ms."""
    response = await AsyncHTTPClient().fetch(server.base_url + "/metrics", request_timeout=10)
    text = response.body.decode()

    def value(name: str, generation: str) -> float:
        found = re.search(rf'^{name}{{generation="{generation}"}} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    return {
        "full_collections": value("kernelpad_gc_pause_seconds_count", "2"),
        "full_pause_ms": value("kernelpad_gc_pause_seconds_sum", "2") * 1000,
        "longest_ms": max(value("kernelpad_gc_pause_longest_seconds", g) for g in ("0", "1", "2"))
        * 1000,
    }


async def port_answers(server: Server) -> bool:
    server.check_alive()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def subprocess_server(
    name: str,
    cmd: list[str],
    port: int,
    ready: Callable[[Server], Any],
    setup: Callable[[Path], dict[str, str]] | None = None,
    problem_pattern: re.Pattern[str] = LOG_PROBLEM,
    token: str = "",
) -> AsyncIterator[Server]:
    """Start ``cmd``, wait until ``ready``, and stop it with SIGTERM when done. Its stderr goes
    to a log file whose warnings and errors end up in ``Server.problems``. ``setup``, if given,
    prepares the server's temporary folder and returns its environment; the server then runs
    in that folder (JupyterLab's keeps its Yjs store in the folder it runs in)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"kpfanout-{name}-"))
    log_path = workdir / "server.log"
    env = setup(workdir) if setup is not None else None
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [part.replace("{workdir}", str(workdir)) for part in cmd],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            cwd=workdir if setup is not None else None,
        )
    server = Server(name, port, proc, workdir, problem_pattern, token)
    try:
        await wait_until(lambda: ready(server), SERVER_START_TIMEOUT, f"{name} on port {port}")
        yield server
    finally:
        stop(server)
        with contextlib.suppress(OSError):
            for line in log_path.read_text(errors="replace").splitlines():
                if server.problem_pattern.search(line):
                    server.problems.append(line)
        shutil.rmtree(workdir, ignore_errors=True)


def stop(server: Server) -> None:
    if not stop_process(server.proc):
        server.problems.append("did not stop within 30 s of SIGTERM")


def kernelpad_server(ws_limit: int) -> contextlib.AbstractAsyncContextManager[Server]:
    """kernelpad as the brief of this benchmark starts it, with room for every reader as a
    participant, and the per-client message limit (``--ws-messages-per-second``, 100 by
    default) raised to ``ws_limit``: past the limit kernelpad reads a client's messages more
    slowly, and the sustained phase would measure that throttle instead of the fan-out."""
    port = free_port()
    cmd = kernelpad_command(
        port,
        "{workdir}",
        "--kernel-pool-size",
        '{"python": 0}',
        "--ws-messages-per-second",
        str(ws_limit),
        "--max-participants-per-session",
        str(MAX_PARTICIPANTS),
    )
    return subprocess_server("kernelpad", cmd, port, kernelpad_answers)


def floor_server() -> contextlib.AbstractAsyncContextManager[Server]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--floor-server", str(port)]
    return subprocess_server("floor", cmd, port, port_answers)


def jupyterlab_server(python: Path) -> contextlib.AbstractAsyncContextManager[Server]:
    """JupyterLab's server side: Jupyter Server from the peers' virtualenv with the extensions
    installed there (jupyter-collaboration's ``jupyter_server_ydoc`` among them), at their
    defaults, serving a temporary folder (``root``) that holds the benchmark's notebooks."""
    port = free_port()
    token = secrets.token_hex(16)
    cmd = jupyter_server_command(python, port, "{workdir}/root", token)

    def setup(workdir: Path) -> dict[str, str]:
        (workdir / "root").mkdir()
        return jupyter_environment(workdir)

    return subprocess_server(
        "jupyterlab", cmd, port, jupyterlab_answers, setup, JUPYTER_LOG_PROBLEM, token
    )


async def jupyterlab_answers(server: Server) -> bool:
    server.check_alive()
    try:
        response = await AsyncHTTPClient().fetch(
            server.base_url + "/api/status",
            headers={"Authorization": f"token {server.token}"},
            raise_error=False,
            request_timeout=2,
        )
    except OSError:
        return False
    return response.code == 200


@dataclass
class Room:
    """One shared notebook on a server, and where its clients connect."""

    url: str  # the y-websocket URL
    synced: bool  # the server holds the document and syncs each client (not the floor)
    session_id: str = ""  # kernelpad's session
    notebook: Path | None = None  # JupyterLab's file
    store_path: str = ""  # JupyterLab's name for the document in its Yjs store


async def open_room(server: Server) -> Room:
    """A new shared notebook on ``server``, holding what a new kernelpad session's holds."""
    if server.name == "kernelpad":
        session_id = await create_session(server)
        return Room(server.ws_url(session_id), True, session_id=session_id)
    if server.name == "jupyterlab":
        return await jupyterlab_room(server)
    return Room(server.ws_url("floor"), False)


async def jupyterlab_room(server: Server) -> Room:
    """A notebook file with the cells of a new kernelpad session, opened as JupyterLab opens
    one for collaboration: ``PUT /api/collaboration/session/<path>`` gives the file's id and
    the server's session, and the room is ``/api/collaboration/room/json:notebook:<id>``
    (jupyter_server_ydoc's handlers.py)."""
    root = server.workdir / "root"
    name = f"fanout-{len(list(root.glob('*.ipynb'))) + 1}.ipynb"
    (root / name).write_text(json.dumps(new_notebook(), indent=1) + "\n")
    response = await AsyncHTTPClient().fetch(
        f"{server.base_url}/api/collaboration/session/{name}",
        method="PUT",
        body=json.dumps({"format": "json", "type": "notebook"}),
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
        raise_error=False,
    )
    if response.code not in (200, 201):
        raise BenchError(
            f"PUT /api/collaboration/session/{name} answered {response.code}: {response.body!r}"
        )
    answer = json.loads(response.body)
    file_id, session = answer["fileId"], answer["sessionId"]
    url = (
        f"ws://127.0.0.1:{server.port}/api/collaboration/room/json:notebook:{file_id}"
        f"?sessionId={session}&token={server.token}"
    )
    return Room(url, True, notebook=root / name, store_path=f".notebook:{file_id}.y")


async def create_session(server: Server) -> str:
    response = await AsyncHTTPClient().fetch(
        server.base_url + "/api/v1/sessions",
        method="POST",
        body=json.dumps({"host_name": "bench", "max_participants": MAX_PARTICIPANTS}),
        headers={"Content-Type": "application/json"},
        raise_error=False,
    )
    if response.code != 201:
        raise BenchError(f"POST /api/v1/sessions answered {response.code}: {response.body!r}")
    session_id: str = json.loads(response.body)["session_id"]
    return session_id


def initial_state() -> bytes:
    """A notebook as a new kernelpad session holds it (one empty code cell), for the floor,
    which has no document of its own to send."""
    from kernelpad.sessions.document import SessionDocument

    return SessionDocument.create("", "python").state()


def new_notebook() -> dict[str, Any]:
    """The same notebook as nbformat JSON, for JupyterLab's server to load from a file."""
    doc: Doc[Any] = Doc()
    doc.apply_update(initial_state())
    notebook: dict[str, Any] = YNotebook(doc).get()
    return notebook


# Delivery of edits


@dataclass
class Tracker:
    """When each edit of a phase was sent, and when each reader received it."""

    readers: int
    sent: dict[int, float] = field(default_factory=dict)
    arrived: dict[int, list[float | None]] = field(default_factory=dict)
    remaining: dict[int, int] = field(default_factory=dict)
    complete: dict[int, float] = field(default_factory=dict)  # when the last reader had it
    duplicates: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def sending(self, number: int) -> None:
        self.arrived[number] = [None] * self.readers
        self.remaining[number] = self.readers
        self.sent[number] = time.perf_counter()

    def received(self, number: int, reader: int, at: float) -> None:
        times = self.arrived.get(number)
        if times is None:  # an edit of another phase
            return
        if times[reader] is not None:
            self.duplicates += 1
            return
        times[reader] = at
        self.remaining[number] -= 1
        if self.remaining[number] == 0:
            self.complete[number] = at
            self.progress.set()

    @property
    def in_flight(self) -> int:
        return len(self.sent) - len(self.complete)

    async def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()``, at most ``timeout`` seconds; whether it is."""
        deadline = time.perf_counter() + timeout
        while not done():
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), left)
        return True

    def delays(self) -> list[list[float | None]]:
        """Per edit, per reader: seconds from sending to arrival, None if it never arrived."""
        return [
            [None if at is None else at - self.sent[n] for at in times]
            for n, times in self.arrived.items()
        ]

    def lost(self) -> int:
        return sum(times.count(None) for times in self.arrived.values())


# Clients: all in this process


class Reader:
    """A participant who only watches. Its socket callback only notes when each marker arrives
    and keeps the message; the messages are applied to its document later (``catch_up``)."""

    def __init__(self, index: int, fleet: Fleet, state: bytes | None) -> None:
        self.index = index
        self.fleet = fleet
        self.doc: Doc[Any] = Doc()
        if state is not None:
            self.doc.apply_update(state)
        self.backlog: list[bytes] = []
        self.synced = asyncio.Event()
        self.conn: WebSocketClientConnection | None = None

    def on_message(self, message: str | bytes | None) -> None:
        at = time.perf_counter()
        if message is None:
            if not self.fleet.closing and self.conn is not None:
                self.fleet.closed_early.append(f"{self.conn.close_code} {self.conn.close_reason}")
            return
        if not isinstance(message, bytes):
            return
        if message.startswith(SYNC_STEP1):  # the server asks for what we have: answer now
            self.catch_up()
            reply = handle_sync_message(message[1:], self.doc)
            if reply is not None and self.conn is not None:
                self.conn.write_message(reply, binary=True)
            return
        self.backlog.append(message)
        tracker = self.fleet.tracker
        if tracker is not None:
            for number in MARKER.findall(message):
                tracker.received(int(number), self.index, at)
        if message.startswith(SYNC_STEP2):
            self.synced.set()

    def catch_up(self) -> None:
        """Apply the messages received so far to this reader's document."""
        for message in self.backlog:
            if message[0] == YMessageType.SYNC:
                handle_sync_message(message[1:], self.doc)
        self.backlog.clear()

    @property
    def text(self) -> str:
        return str(YNotebook(self.doc).ycells[0]["source"])


class Writer:
    """The participant who types: each edit is sent as the Yjs update the document makes."""

    def __init__(self, state: bytes | None) -> None:
        self.doc: Doc[Any] = Doc()
        if state is not None:
            self.doc.apply_update(state)
        self.conn: WebSocketClientConnection | None = None
        self.synced = asyncio.Event()
        self.closed: str | None = None  # the close code and reason, once closed
        self.sizes: list[int] = []
        self._applying = False
        self._source: Text | None = None
        self._subscription = self.doc.observe(self._send_local)

    def on_message(self, message: str | bytes | None) -> None:
        if message is None and self.conn is not None:
            self.closed = f"{self.conn.close_code} {self.conn.close_reason}"
        if not isinstance(message, bytes) or message[0] != YMessageType.SYNC:
            return
        self._applying = True
        try:
            reply = handle_sync_message(message[1:], self.doc)
        finally:
            self._applying = False
        if reply is not None and self.conn is not None:
            self.conn.write_message(reply, binary=True)
        if message.startswith(SYNC_STEP2):
            self.synced.set()

    def _send_local(self, event: TransactionEvent) -> None:
        if self._applying or self.conn is None:
            return
        message = create_update_message(event.update)
        self.sizes.append(len(message))
        try:
            self.conn.write_message(message, binary=True)
        except tornado.websocket.WebSocketClosedError:
            self.closed = self.closed or "closed while sending"

    @property
    def source(self) -> Text:
        if self._source is None:
            self._source = YNotebook(self.doc).ycells[0]["source"]
        return self._source

    def edit(self, number: int) -> None:
        source = self.source
        source.insert(len(source), marker(number))


async def open_socket(
    url: str, on_message: Callable[[str | bytes | None], None]
) -> WebSocketClientConnection:
    conn = await websocket_connect(url, on_message_callback=on_message)
    # As a browser does for a WebSocket: no Nagle delay on small frames.
    conn.protocol.stream.set_nodelay(True)  # type: ignore[union-attr]
    return conn


@dataclass
class Fleet:
    """One writer and its readers, connected to one server's session."""

    server: Server
    writer: Writer
    readers: list[Reader] = field(default_factory=list)
    tracker: Tracker | None = None
    next_marker: int = 0
    closed_early: list[str] = field(default_factory=list)  # readers' close codes and reasons
    closing: bool = False

    def edit(self) -> None:
        assert self.tracker is not None
        if self.writer.closed is not None:
            raise BenchError(
                f"{self.server.name} closed the writer's socket: {self.writer.closed}"
                f" (after {len(self.tracker.sent)} edits of this phase)"
            )
        number = self.next_marker
        self.next_marker += 1
        self.tracker.sending(number)
        self.writer.edit(number)

    def catch_up(self) -> None:
        for reader in self.readers:
            reader.catch_up()

    async def close(self) -> None:
        self.closing = True
        conns = [self.writer.conn] + [reader.conn for reader in self.readers]
        for conn in conns:
            if conn is not None:
                conn.close()
        await asyncio.sleep(0.3)  # the closing handshakes


async def connect(server: Server, room: Room, readers: int) -> Fleet:
    """The writer and ``readers`` readers on ``room``. On kernelpad and JupyterLab each syncs
    with the server's document (y-websocket handshake); on the floor, which has no document,
    they all start from the same notebook."""
    url = room.url
    state = None if room.synced else initial_state()
    fleet = Fleet(server, Writer(state))
    fleet.writer.conn = await open_socket(url, fleet.writer.on_message)
    clients: list[Writer | Reader] = [fleet.writer]
    for index in range(readers):
        reader = Reader(index, fleet, state)
        reader.conn = await open_socket(url, reader.on_message)
        fleet.readers.append(reader)
        clients.append(reader)
    if room.synced:
        for client in clients:
            assert client.conn is not None
            client.conn.write_message(create_sync_message(client.doc), binary=True)
        waits = [asyncio.wait_for(client.synced.wait(), 30) for client in clients]
        try:
            await asyncio.gather(*waits)
        except TimeoutError:
            raise BenchError(f"{server.name}: not every client synced within 30 s") from None
    fleet.catch_up()
    return fleet


# Measurements


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


@dataclass
class Stats:
    """A series of latencies, in milliseconds."""

    count: int
    median_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        if not seconds:
            return cls(0, math.nan, math.nan, math.nan)
        ms = [s * 1000 for s in seconds]
        return cls(
            len(ms),
            round(statistics.median(ms), 3),
            round(percentile(ms, 0.99), 3),
            round(max(ms), 3),
        )


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot, all CPUs together."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class Usage:
    """Wall time of a phase and the CPU used in it: by the server, by this (client) process, and
    by everything else on the machine (other work competing for the CPUs skews the figures)."""

    server: Server
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    other_cpu: float = 0.0

    def __enter__(self) -> Usage:
        self._start = (
            time.perf_counter(),
            self.server.cpu_seconds(),
            time.process_time(),
            busy_cpu_seconds(),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        wall, server, client, busy = self._start
        self.wall = time.perf_counter() - wall
        self.server_cpu = self.server.cpu_seconds() - server
        self.client_cpu = time.process_time() - client
        self.other_cpu = max(0.0, busy_cpu_seconds() - busy - self.server_cpu - self.client_cpu)

    def report(self) -> dict[str, float]:
        def percent(seconds: float) -> float:
            return round(100 * seconds / self.wall, 1)

        return {
            "wall_s": round(self.wall, 3),
            "server_cpu_percent_of_one_core": percent(self.server_cpu),
            "client_cpu_percent_of_one_core": percent(self.client_cpu),
            "other_cpu_percent_of_one_core": percent(self.other_cpu),
        }


async def warm_up(fleet: Fleet, edits: int, server: Server) -> None:
    """A few edits every reader must get before anything is timed: proof that all are in."""
    fleet.tracker = Tracker(len(fleet.readers))
    for _ in range(edits):
        fleet.edit()
        await asyncio.sleep(0.02)
    tracker = fleet.tracker
    if not await tracker.wait(lambda: tracker.in_flight == 0, DELIVERY_TIMEOUT):
        raise BenchError(
            f"{server.name}: {tracker.lost()} warm-up deliveries missing after"
            f" {DELIVERY_TIMEOUT:g} s"
        )
    fleet.catch_up()


async def paced_latency(fleet: Fleet, edits: int, rate: float, server: Server) -> dict[str, Any]:
    """``edits`` edits at ``rate`` per second; latency to the last reader and to each."""
    tracker = fleet.tracker = Tracker(len(fleet.readers))
    gc.collect()
    with Usage(server) as usage:
        start = time.perf_counter()
        for i in range(edits):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            fleet.edit()
        await tracker.wait(lambda: tracker.in_flight == 0, DELIVERY_TIMEOUT)
    fleet.catch_up()
    delays = tracker.delays()  # per edit, per reader: seconds, None if it never arrived
    last = [tracker.complete[n] - tracker.sent[n] for n in tracker.complete]
    each = [d for row in delays for d in row if d is not None]
    first = [min(d for d in row if d is not None) for row in delays if row.count(None) < len(row)]
    per_reader_medians = [
        statistics.median(ds) * 1000
        for r in range(len(fleet.readers))
        if (ds := [d for row in delays if (d := row[r]) is not None])
    ]
    return {
        "edits": edits,
        "rate_per_s": rate,
        "last_reader": asdict(Stats.of(last)),
        "each_reader": asdict(Stats.of(each)),
        "first_reader": asdict(Stats.of(first)),
        "per_reader_median_ms": {
            "min": round(min(per_reader_medians, default=math.nan), 3),
            "max": round(max(per_reader_medians, default=math.nan), 3),
            "by_reader": [round(m, 3) for m in per_reader_medians],
        },
        "lost_deliveries": tracker.lost(),
        "edits_not_at_every_reader": edits - len(tracker.complete),
        "duplicate_deliveries": tracker.duplicates,
        **usage.report(),
    }


async def sustained(fleet: Fleet, seconds: float, window: int, server: Server) -> dict[str, Any]:
    """Edits as fast as the writer can send them, at most ``window`` in flight, for
    ``seconds``: how many per second reached every reader."""
    tracker = fleet.tracker = Tracker(len(fleet.readers))
    gc.collect()
    with Usage(server) as usage:
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            if tracker.in_flight >= window:
                await tracker.wait(lambda: tracker.in_flight < window, end - time.perf_counter())
                continue
            fleet.edit()
            await asyncio.sleep(0)  # let the readers read
        # The edits still in flight: their cost is part of the server's CPU per edit.
        await tracker.wait(lambda: tracker.in_flight == 0, DELIVERY_TIMEOUT)
    sent = len(tracker.sent)
    on_time = sum(1 for at in tracker.complete.values() if at <= end)
    fleet.catch_up()
    latencies = [tracker.complete[n] - tracker.sent[n] for n in tracker.complete]
    return {
        "seconds": seconds,
        "window": window,
        "edits_sent": sent,
        "edits_at_every_reader_in_time": on_time,
        "edits_per_s_at_every_reader": round(on_time / seconds, 1),
        "last_reader_under_load": asdict(Stats.of(latencies)),
        "lost_deliveries": tracker.lost(),
        "duplicate_deliveries": tracker.duplicates,
        "server_cpu_ms_per_edit": round(1000 * usage.server_cpu / sent, 3) if sent else math.nan,
        "client_cpu_ms_per_edit": round(1000 * usage.client_cpu / sent, 3) if sent else math.nan,
        **usage.report(),
    }


async def settle(server: Server, limit: float = 15.0) -> tuple[float, float]:
    """Wait until the server is idle (under 10% of a core for 0.25 s), at most ``limit``
    seconds; how long it stayed busy after the last phase, in seconds, and the CPU seconds it
    used meanwhile: work still queued (writes to SQLite, say) shows here."""
    start = time.perf_counter()
    cpu_start = server.cpu_seconds()
    while time.perf_counter() - start < limit:
        before = server.cpu_seconds()
        await asyncio.sleep(0.25)
        if server.cpu_seconds() - before < 0.025:
            break
    busy = round(max(0.0, time.perf_counter() - start - 0.25), 2)
    return busy, server.cpu_seconds() - cpu_start


async def stored(server: Server, session_id: str, fleet: Fleet) -> dict[str, Any]:
    """What kernelpad stored of the session: its updates (rebuilt into a document) and its
    ``code``, against the writer's text. The code column may lag the document by up to
    about a second and a quarter while the session is open (read from the document at most
    once a second, written with the next write or within 0.2 s): it is read until it
    matches, for up to ``CODE_WAIT`` seconds."""
    expected = str(fleet.writer.source)
    path = server.workdir / "kernelpad.sqlite"
    deadline = time.monotonic() + CODE_WAIT
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT data FROM document_updates WHERE session_id = ? ORDER BY seq", (session_id,)
        ).fetchall()
        code_row = db.execute("SELECT code FROM sessions WHERE id = ?", (session_id,)).fetchone()
        while (code_row is None or code_row[0] != expected) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            code_row = db.execute(
                "SELECT code FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
    doc: Doc[Any] = Doc()
    for (data,) in rows:
        doc.apply_update(bytes(data))
    return {
        "stored_updates": len(rows),
        "edits_sent": fleet.next_marker,
        "stored_document_matches_writer": str(YNotebook(doc).ycells[0]["source"]) == expected,
        "stored_code_matches_writer": code_row is not None and code_row[0] == expected,
    }


async def saved(server: Server, room: Room, fleet: Fleet) -> dict[str, Any]:
    """What JupyterLab's server kept of the notebook: the updates in its Yjs store, and the
    file it saves (``document_save_delay`` after the last edit: its default is 1 s, so this
    waits for it), against the writer's text."""
    assert room.notebook is not None
    expected = str(fleet.writer.source)
    deadline = time.monotonic() + SAVE_WAIT
    on_disk = False
    while not on_disk and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            cells = json.loads(room.notebook.read_text())["cells"]
            source = cells[0]["source"]
            on_disk = (source if isinstance(source, str) else "".join(source)) == expected
    store = server.workdir / ".jupyter_ystore.db"
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        (rows,) = db.execute(
            "SELECT COUNT(*) FROM yupdates WHERE path = ?", (room.store_path,)
        ).fetchone()
    return {
        "stored_updates": rows,
        "edits_sent": fleet.next_marker,
        "saved_notebook_matches_writer": on_disk,
    }


def verify(fleet: Fleet) -> dict[str, int]:
    """Every reader's text, all messages applied, against the writer's."""
    expected = str(fleet.writer.source)
    differ = sum(1 for reader in fleet.readers if reader.text != expected)
    return {"readers_whose_text_differs": differ, "text_chars": len(expected)}


async def measure_server(server: Server, readers: int, args: argparse.Namespace) -> dict[str, Any]:
    kernelpad = server.name == "kernelpad"
    room = await open_room(server)
    fleet = await connect(server, room, readers)
    gc_before = await gc_pauses(server) if kernelpad else None
    try:
        await warm_up(fleet, args.warmup, server)
        await settle(server)
        latency = await paced_latency(fleet, args.edits, args.rate, server)
        throughput = await sustained(fleet, args.sustain, args.window, server)
        # Long enough for JupyterLab's store to catch up (it writes each update in a
        # transaction of its own, after the fan-out): the next server measured must not share
        # the CPUs with this one's backlog.
        busy, queued_cpu = await settle(server, QUEUE_LIMIT)
        sent = throughput["edits_sent"]
        throughput["server_cpu_ms_per_edit_with_queued_work"] = (
            round(throughput["server_cpu_ms_per_edit"] + 1000 * queued_cpu / sent, 3)
            if sent
            else math.nan
        )
        checked = verify(fleet)
        if kernelpad:
            checked.update(await stored(server, room.session_id, fleet))
        elif server.name == "jupyterlab":
            checked.update(await saved(server, room, fleet))
        sizes = fleet.writer.sizes
    finally:
        await fleet.close()
    server.check_alive()
    gc_during = None
    if gc_before is not None:
        after = await gc_pauses(server)
        gc_during = {
            "full_collections": after["full_collections"] - gc_before["full_collections"],
            "full_pause_ms": round(after["full_pause_ms"] - gc_before["full_pause_ms"], 2),
            "longest_since_start_ms": round(after["longest_ms"], 2),
        }
    return {
        "latency": latency,
        "throughput": throughput,
        "garbage_collection": gc_during,
        "server_busy_after_s": busy,
        "check": {**checked, "readers_closed_early": fleet.closed_early},
        "update_message_bytes_median": statistics.median(sizes) if sizes else 0,
    }


def ratios(kp: dict[str, Any], floor: dict[str, Any]) -> dict[str, float]:
    a, b = kp["latency"]["last_reader"], floor["latency"]["last_reader"]
    t = kp["throughput"]["edits_per_s_at_every_reader"]
    f = floor["throughput"]["edits_per_s_at_every_reader"]
    return {
        "last_reader_median": round(a["median_ms"] / b["median_ms"], 2),
        "last_reader_p99": round(a["p99_ms"] / b["p99_ms"], 2),
        "throughput_kernelpad_over_floor": round(t / f, 3) if f else math.nan,
        "server_cpu_per_edit_kernelpad_over_floor": round(
            kp["throughput"]["server_cpu_ms_per_edit"]
            / floor["throughput"]["server_cpu_ms_per_edit"],
            2,
        ),
    }


def peer_ratios(kp: dict[str, Any], peer: dict[str, Any]) -> dict[str, float]:
    """kernelpad over JupyterLab's server: under 1 is kernelpad ahead for the latencies and the
    CPU per edit, over 1 for the edits per second."""
    a, b = kp["latency"]["last_reader"], peer["latency"]["last_reader"]
    t, f = kp["throughput"], peer["throughput"]
    return {
        "last_reader_median": round(a["median_ms"] / b["median_ms"], 2),
        "last_reader_p99": round(a["p99_ms"] / b["p99_ms"], 2),
        "edits_per_s": round(t["edits_per_s_at_every_reader"] / f["edits_per_s_at_every_reader"], 2)
        if f["edits_per_s_at_every_reader"]
        else math.nan,
        "server_cpu_per_edit": round(
            t["server_cpu_ms_per_edit_with_queued_work"]
            / f["server_cpu_ms_per_edit_with_queued_work"],
            2,
        ),
    }


# What the peers' virtualenv holds, and the collaboration extension's settings that bear on
# the figures, read from the installed package (the benchmark leaves them at their defaults).
PEER_PROBE = """
import json, importlib.metadata as meta
from jupyter_server_ydoc.app import YDocExtension
traits = YDocExtension.class_traits()
packages = ("jupyter-collaboration", "jupyter-server-ydoc", "jupyter-server", "jupyterlab",
            "jupyter-ydoc", "pycrdt", "pycrdt-websocket", "pycrdt-store", "tornado")
names = ("document_save_delay", "file_poll_interval", "document_cleanup_delay")
store = traits["ystore_class"].default_value
print(json.dumps({
    "versions": {name: meta.version(name) for name in packages},
    "settings": {**{name: traits[name].default_value for name in names},
                 "ystore_class": getattr(store, "__name__", str(store))},
}))
"""


def find_peers(args: argparse.Namespace) -> tuple[Path | None, dict[str, Any]]:
    """JupyterLab's server, if it is to be measured and can be had: the peers' Python (None
    if not) and what to report about it (why not, or its versions and settings)."""
    if not args.peers:
        return None, {"measured": False, "reason": "--no-peers"}
    try:
        python = peers_python()
        probe = subprocess.run(
            [str(python), "-c", PEER_PROBE], capture_output=True, text=True, timeout=60
        )
    except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
        return None, {"measured": False, "reason": str(exc)}
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return None, {"measured": False, "reason": f"the peers' virtualenv is broken: {last}"}
    return python, {"measured": True, "requirements": list(PEERS_REQUIREMENTS)} | json.loads(
        probe.stdout
    )


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    peers_at, peers = find_peers(args)
    if peers_at is None:
        print(f"JupyterLab's server is not measured: {peers['reason']}", flush=True)
    load_at_start = round(os.getloadavg()[0], 2)
    runs: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(kernelpad_server(args.ws_limit)),
            await stack.enter_async_context(floor_server()),
        ]
        if peers_at is not None:
            servers.append(await stack.enter_async_context(jupyterlab_server(peers_at)))
        for readers in args.readers:
            run: dict[str, Any] = {}
            for server in servers:
                print(f"  {readers} readers: {server.name} ...", flush=True)
                run[server.name] = await measure_server(server, readers, args)
            run["ratios"] = ratios(run["kernelpad"], run["floor"])
            if "jupyterlab" in run:
                run["ratios_to_jupyterlab"] = peer_ratios(run["kernelpad"], run["jupyterlab"])
            runs[str(readers)] = run
    problems = {f"{server.name}_log_problems": server.problems for server in servers}
    return {
        "machine": {
            **machine_info(pycrdt=pycrdt.__version__),
            "load_average_1m_at_start": load_at_start,
        },
        "settings": {
            **{
                k: v
                for k, v in vars(args).items()
                if k not in ("output", "floor_server", "setup_peers")
            },
            "duration_s": round(time.monotonic() - started, 1),
        },
        "runs": runs,
        "targets": {
            "last_reader_p99_ms_at_50_readers": P99_TARGET_MS,
            "kernelpad_over_floor": FLOOR_TARGET,
        },
        "verdicts": verdicts(runs),
        "jupyterlab": peers,
        **problems,
    }


# Report


def verdicts(runs: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    at = runs.get(str(TARGET_READERS))
    if at is not None:
        p99 = at["kernelpad"]["latency"]["last_reader"]["p99_ms"]
        found[f"p99_at_{TARGET_READERS}_readers"] = verdict(p99, P99_TARGET_MS)
    for readers, run in runs.items():
        for which in ("median", "p99"):
            found[f"floor_ratio_{which}_at_{readers}_readers"] = verdict(
                run["ratios"][f"last_reader_{which}"], FLOOR_TARGET
            )
    for readers, run in runs.items():
        peer = run.get("ratios_to_jupyterlab")
        if peer is None:
            continue
        for name, key, lower_is_better in PEER_FIGURES:
            ratio = peer[key]
            ahead = ratio < 1 if lower_is_better else ratio > 1
            found[f"jupyterlab_{name}_at_{readers}_readers"] = (
                "kernelpad ahead" if ahead else "kernelpad not ahead"
            )
    return found


# The figures compared with JupyterLab's server: name, key in ``peer_ratios``, and whether
# less is better (latency, CPU) or more (edits per second).
PEER_FIGURES = (
    ("median", "last_reader_median", True),
    ("p99", "last_reader_p99", True),
    ("edits_per_s", "edits_per_s", False),
    ("cpu_per_edit", "server_cpu_per_edit", True),
)
SERVER_NAMES = ("kernelpad", "floor", "jupyterlab")


def cpu(phase: dict[str, Any]) -> str:
    server = phase["server_cpu_percent_of_one_core"]
    client = phase["client_cpu_percent_of_one_core"]
    other = phase["other_cpu_percent_of_one_core"]
    return f"{server:>6.0f}% {client:>6.0f}% {other:>5.0f}%"


def spread(phase: dict[str, Any]) -> str:
    medians = phase["per_reader_median_ms"]
    return f"{medians['min']:.2f}-{medians['max']:.2f}"


def print_latency(runs: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n1. Edit to readers, paced: {args.edits} edits at {args.rate:g}/s, latency in ms"
        "\n   (CPU: % of one core used by the server, by the client process, by anything else)"
    )
    print(
        f"{'readers':>7}  {'server':9} {'last reader':>19}  {'each reader':>19}"
        f"  {'first':>7}  {'per-reader':>13}  {'lost':>5}  {'CPU server':>10} {'client':>7}"
        f" {'other':>6}"
    )
    print(
        f"{'':18} {'median':>9} {'p99':>9}  {'median':>9} {'p99':>9}  {'median':>7}"
        f"  {'medians':>13}"
    )
    for readers, run in runs.items():
        for name in servers_in(run):
            lat = run[name]["latency"]
            last, each = lat["last_reader"], lat["each_reader"]
            print(
                f"{readers:>7}  {name:9} {last['median_ms']:9.2f} {last['p99_ms']:9.2f}"
                f"  {each['median_ms']:9.2f} {each['p99_ms']:9.2f}"
                f"  {lat['first_reader']['median_ms']:7.2f}  {spread(lat):>13}"
                f"  {lat['lost_deliveries']:>5}"
                f"  {cpu(lat)}"
            )
        r = run["ratios"]
        print(
            f"{'':7}  {'kp/floor':9} {r['last_reader_median']:8.2f}x {r['last_reader_p99']:8.2f}x"
        )
        if (j := run.get("ratios_to_jupyterlab")) is not None:
            print(
                f"{'':7}  {'kp/jlab':9} {j['last_reader_median']:8.2f}x"
                f" {j['last_reader_p99']:8.2f}x"
            )


def print_throughput(runs: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n2. Sustained: the writer edits as fast as it can for {args.sustain:g} s,"
        f" at most {args.window} edits in flight\n   (kernelpad started with"
        f" --ws-messages-per-second {args.ws_limit}: its default, 100, slows a faster writer)"
    )
    print(
        f"{'readers':>7}  {'server':9} {'sent':>6} {'edits/s':>8} {'latency ms':>18}"
        f"  {'lost':>5}  {'CPU ms per edit':>15}  {'CPU server':>10} {'client':>7} {'other':>6}"
    )
    print(f"{'':25} {'at all':>8} {'median':>9} {'p99':>8}  {'':5}  {'server':>7} {'client':>7}")
    for readers, run in runs.items():
        for name in servers_in(run):
            t = run[name]["throughput"]
            lat = t["last_reader_under_load"]
            print(
                f"{readers:>7}  {name:9} {t['edits_sent']:>6}"
                f" {t['edits_per_s_at_every_reader']:>8.0f}"
                f" {lat['median_ms']:>9.1f} {lat['p99_ms']:>8.1f}  {t['lost_deliveries']:>5}"
                f"  {t['server_cpu_ms_per_edit']:>7.3f} {t['client_cpu_ms_per_edit']:>7.3f}"
                f"  {cpu(t)}"
            )
        r = run["ratios"]
        print(
            f"{'':7}  {'kp/floor':9} {'':6} {r['throughput_kernelpad_over_floor']:>7.2f}x"
            f" {'':26} {r['server_cpu_per_edit_kernelpad_over_floor']:>6.2f}x"
        )
        if (j := run.get("ratios_to_jupyterlab")) is not None:
            print(
                f"{'':7}  {'kp/jlab':9} {'':6} {j['edits_per_s']:>7.2f}x"
                f" {'':26} {j['server_cpu_per_edit']:>6.2f}x"
            )


def print_gc(runs: dict[str, Any]) -> None:
    print("\n   kernelpad's garbage collection pauses (from its /metrics), while each count ran:")
    for readers, run in runs.items():
        gc_run = run["kernelpad"].get("garbage_collection")
        if gc_run:
            print(
                f"{readers:>7}  full collections {gc_run['full_collections']:g}"
                f" ({gc_run['full_pause_ms']:g} ms in all); longest pause of any collection"
                f" since start {gc_run['longest_since_start_ms']:g} ms"
            )


def print_checks(runs: dict[str, Any]) -> None:
    print(
        "\n3. Checks: readers' documents (all messages applied) and what the servers stored,"
        " against the writer's text"
    )
    for readers, run in runs.items():
        for name in servers_in(run):
            c, r = run[name]["check"], run[name]
            dup = r["latency"]["duplicate_deliveries"] + r["throughput"]["duplicate_deliveries"]
            print(
                f"{readers:>7}  {name:9} readers differing {c['readers_whose_text_differs']}/"
                f"{readers} ({c['text_chars']} chars), duplicates {dup}, closed early"
                f" {len(c['readers_closed_early'])}, update {r['update_message_bytes_median']:g} B,"
                f" server busy {r['server_busy_after_s']:g} s after (CPU per sustained edit,"
                f" that included: {r['throughput']['server_cpu_ms_per_edit_with_queued_work']:g}"
                " ms)"
            )
            if "stored_document_matches_writer" in c:
                print(
                    f"{'':18} stored: {c['stored_updates']} updates for {c['edits_sent']} edits,"
                    f" rebuilt document matches: {c['stored_document_matches_writer']},"
                    f" session code matches: {c['stored_code_matches_writer']}"
                )
            if "saved_notebook_matches_writer" in c:
                print(
                    f"{'':18} Yjs store: {c['stored_updates']} updates for {c['edits_sent']}"
                    f" edits, saved notebook file matches: {c['saved_notebook_matches_writer']}"
                )


def servers_in(run: dict[str, Any]) -> list[str]:
    return [name for name in SERVER_NAMES if name in run]


def print_peers(results: dict[str, Any]) -> None:
    """kernelpad against JupyterLab's server, the figures side by side, or why it was not
    measured."""
    peers = results["jupyterlab"]
    if not peers["measured"]:
        print(f"\n4. JupyterLab's collaboration server: not measured ({peers['reason']})")
        return
    versions = peers["versions"]
    settings = peers["settings"]
    print(
        f"\n4. kernelpad / JupyterLab's collaboration server (jupyter-collaboration"
        f" {versions['jupyter-collaboration']}, jupyter-server-ydoc"
        f" {versions['jupyter-server-ydoc']}, Jupyter Server {versions['jupyter-server']},"
        f" pycrdt {versions['pycrdt']};\n   its defaults: document_save_delay"
        f" {settings['document_save_delay']} s, file_poll_interval"
        f" {settings['file_poll_interval']} s, {settings['ystore_class']});\n   paced"
        " latency, sustained edits/s, and the server's CPU per sustained edit with the work"
        "\n   still queued after the phase (under 1x: kernelpad ahead; over 1x for edits/s)"
    )
    print(
        f"{'readers':>7}  {'last reader median ms':>23}  {'last reader p99 ms':>23}"
        f"  {'edits/s at all':>23}  {'server CPU ms per edit':>23}"
    )
    for readers, run in results["runs"].items():
        if "jupyterlab" not in run:
            continue
        kp, jl, ratio = run["kernelpad"], run["jupyterlab"], run["ratios_to_jupyterlab"]
        cells = []
        for _name, key, _lower in PEER_FIGURES:
            if key == "edits_per_s":
                a = kp["throughput"]["edits_per_s_at_every_reader"]
                b = jl["throughput"]["edits_per_s_at_every_reader"]
            elif key == "server_cpu_per_edit":
                a = kp["throughput"]["server_cpu_ms_per_edit_with_queued_work"]
                b = jl["throughput"]["server_cpu_ms_per_edit_with_queued_work"]
            else:
                which = "median_ms" if key == "last_reader_median" else "p99_ms"
                a, b = kp["latency"]["last_reader"][which], jl["latency"]["last_reader"][which]
            cells.append(f"{a:>7.4g} / {b:<7.4g} {ratio[key]:>5.2f}x")
        print(f"{readers:>7}  " + "  ".join(cells))


def print_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    info = results["machine"]
    runs = results["runs"]
    print(
        f"\nkernelpad Yjs fan-out  ({info['timestamp']}, {info['cpu_count']} CPUs,"
        f" load {info['load_average_1m_at_start']} at the start and"
        f" {info['load_average_1m_at_end']} at the end, Python {info['python']},"
        f" {results['settings']['duration_s']:g} s)"
    )
    print(
        "One writer and N readers, all in this one Python process (the client side costs CPU"
        " too:\nsee the client column; with many readers it competes with the server for the"
        f" {info['cpu_count']} CPUs)."
    )
    print_latency(runs, args)
    print_throughput(runs, args)
    print_gc(runs)
    print_checks(runs)
    print_peers(results)
    print("\nTargets")
    for name, value in results["verdicts"].items():
        print(f"  {name}: {value}")
    for who in SERVER_NAMES:
        problems = results.get(f"{who}_log_problems")
        if problems is None:
            continue
        if problems:
            print(f"\n{who} logged {len(problems)} warning(s) or error(s):")
            for line in problems[:20]:
                print(f"  {line}")
        else:
            print(f"\n{who} logged no warnings or errors.")


def write_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nFigures written to {path}")


# Main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.splitlines()[:2]))
    parser.add_argument(
        "--readers",
        default="10,50,100",
        help="reader counts to measure, comma separated (default 10,50,100)",
    )
    parser.add_argument("--edits", type=int, default=200, help="paced edits per count (200)")
    parser.add_argument("--rate", type=float, default=20.0, help="paced edits per second (20)")
    parser.add_argument(
        "--sustain", type=float, default=3.0, help="seconds of edits as fast as possible (3)"
    )
    parser.add_argument(
        "--window", type=int, default=32, help="most edits in flight when sustained (32)"
    )
    parser.add_argument(
        "--ws-limit",
        type=int,
        default=1_000_000,
        help="kernelpad's --ws-messages-per-second for the run (default 1000000: no limit;"
        " kernelpad's own default, 100, slows the sustained writer down)",
    )
    parser.add_argument("--warmup", type=int, default=10, help="untimed edits first (10)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="the JSON file")
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure JupyterLab's collaboration server, from bench/.peers-venv, made"
        " with pip if missing (default: on; skipped, and said so, if it cannot be made)",
    )
    parser.add_argument(
        "--setup-peers",
        action="store_true",
        help="only make bench/.peers-venv (JupyterLab's server) if missing, then exit",
    )
    parser.add_argument(
        "--floor-server", type=int, metavar="PORT", help="internal: run the floor server"
    )
    args = parser.parse_args()
    try:
        args.readers = [int(part) for part in args.readers.split(",") if part.strip()]
    except ValueError:
        parser.error("--readers: a comma-separated list of numbers")
    if not args.readers or min(args.readers) < 1:
        parser.error("--readers: at least one count, each at least 1")
    for name in ("edits", "window"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.rate <= 0 or args.sustain <= 0 or args.warmup < 1:
        parser.error("--rate and --sustain must be positive, --warmup at least 1")
    return args


def main() -> None:
    args = parse_args()
    if args.floor_server is not None:
        run_on_kernelpads_loop(serve_floor(args.floor_server))
        return
    if args.setup_peers:
        try:
            print(f"JupyterLab's server for the benchmarks: {peers_python()}")
        except BenchError as exc:
            sys.exit(str(exc))
        return
    print("Measuring (15 s or more per reader count and server) ...", flush=True)
    try:
        results = asyncio.run(measure(args))
    except BenchError as exc:
        sys.exit(f"benchmark aborted: {exc}")
    print_report(results, args)
    write_results(results, args.output)


if __name__ == "__main__":
    main()
