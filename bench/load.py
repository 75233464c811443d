"""Capacity and soak: many interviews at once on one kernelpad server, and nothing lost.

For each number of sessions S (``--sessions``, default 1, 25, 50, 100 and 150), on a fresh
server:

1. S sessions are created. Each has an interviewer and a candidate, both typing into the shared
   notebook over Yjs at human speed (``--edit-rate`` edits a second each, at random moments).
   Each edit is a short line with a unique marker, put at the start of a random line. Each
   session also has a JSON-protocol client that runs code every ``--run-every`` seconds or so:
   Python, and in every third session JavaScript too (in turn). At the smallest S, the
   baseline, the one interview runs every ``--baseline-run-every`` seconds (0.25): alone on
   the server, so that each language's p99 is that of about 120 runs (their second slowest),
   not the slowest of five or six (runs close together find the CPUs awake; if anything, that
   makes the baseline faster). A first run per language starts the kernels (the warm-up,
   timed apart; at most 16 at a time); then the harness waits until the kernels are quiet
   (new kernels finish their start-up work, the pool its replacements).
2. For ``--duration`` seconds (default 60) all of it goes on at once. Measured:
   - **edit fan-out:** from one typist's send to the other typist having the marker;
   - **run latency:** from sending ``execute`` to ``execution_finished``, split into the time
     waiting for the kernel (queueing, from the server), in the kernel, and the rest
     (kernelpad's own overhead); and split again by the server's record of each run (its
     start and end, on the same clock): to the server, in it, and back (``run_split``);
   - errors of any kind: error messages, closed sockets, failed requests;
   - the server's CPU and RSS, the kernels' number and RSS, every second;
   - the server's own waits, from its ``/metrics`` before and after: its event loop's lag
     and its database writes' (queued to stored); and, from the same, the runs' time by
     their kernels' own clocks (from the kernel's busy status to its idle one, by the dates
     on its messages), which tells the kernels' own part of the time "in it" from the rest.
   With ``--busy N``, N of the interviews run a loop that keeps a core busy instead of the
   trivial runs: what the others feel of a candidate's runaway code.
3. Then typing stops and the harness waits for every edit to arrive. Memory is read again with
   all sessions idle: the server's growth per session, and each kernel's RSS by language.
4. Nothing lost? Every typist's text must equal the other's and the server's document. Every
   run a client saw finish must be in the session's stored history. Once everyone has left,
   the stored notebook (the export) must equal the text too.
5. The sessions end. Kernel culling and the pool must bring the kernels back to the pool's
   size.

The clients all run in this one process, on the same 2-core machine as the server and its
kernels; the harness's own CPU is reported too. Results go to ``bench/results/load.json`` and a
plot to ``bench/results/load.png``. The "knee" is the largest S whose p99 run latency stays under
twice that of one session, language by language (the mix of languages differs: half of the one
interview's runs are JavaScript, a sixth at large S), with no error and nothing lost: this
machine's capacity.

Run it with ``make load`` or ``.venv/bin/python bench/load.py [--sessions 1,10,25,50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from harness import (
    BenchError,
    add_client_loop,
    free_port,
    histogram_summary,
    kernelpad_command,
    log_tail,
    machine_info,
    run_on_kernelpads_loop,
    server_histograms,
    stop_process,
)
from jupyter_ydoc import YNotebook
from pycrdt import (
    Doc,
    Text,
    TransactionEvent,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.websocket import WebSocketClientConnection, websocket_connect

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

RESULTS = Path(__file__).resolve().parent / "results"
POOL = {"python": 2, "javascript": 1}
CODE = {
    "python": "total = sum(i * i for i in range(2000))\nprint(total)",
    "javascript": (
        "let total = 0;\nfor (let i = 0; i < 2000; i++) total += i * i;\nconsole.log(total);"
    ),
}
# What a busy candidate runs (--busy): a loop keeping a core busy, in runs of BUSY_SECONDS
# (under the server's time limit here, 30 s), one after the other.
BUSY_SECONDS = 5
BUSY_CODE = f"import time\nend = time.time() + {BUSY_SECONDS}\nwhile time.time() < end:\n    pass"
# The server's histograms read before and after each phase (its /metrics).
SERVER_WAITS = (
    "kernelpad_event_loop_lag_seconds",
    "kernelpad_database_write_seconds",
    # Not a wait of the server's: its runs' time by their kernels' own clocks, to tell from
    # the part of a run the server times.
    "kernelpad_kernel_busy_seconds",
)
# What in a kernel tree's command lines tells its language.
KERNEL_MARKERS = (("ipykernel", "python"), ("deno", "javascript"), ("java", "java"))
WARM_AT_ONCE = 16  # first runs (kernel starts) at once in the warm-up
SETTLE_TIMEOUT = 15.0  # seconds for the last edits to arrive before they count as lost
# Kernels count as quiet, before the timed phase, under this much CPU (% of one core) in all,
# waited for at most QUIET_TIMEOUT seconds.
QUIET_CPU_PERCENT = 15.0
QUIET_TIMEOUT = 300.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    # Nearest rank: the smallest value with at least q of them at or under it (under 100
    # values, the p99 is the largest).
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    """Milliseconds: count, p50, p99, max."""
    return {
        "count": len(values),
        "p50_ms": _ms(percentile(values, 0.5)),
        "p99_ms": _ms(percentile(values, 0.99)),
        "max_ms": _ms(max(values) if values else None),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


# The server


@dataclass(frozen=True)
class ProcessRow:
    """What ``/proc/PID/stat`` says of a process."""

    ppid: int
    cpu_seconds: float  # user and system
    rss_bytes: int
    started: int  # clock ticks after boot: with the pid, which process this is


TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _process_table() -> dict[int, ProcessRow]:
    """Every process of the machine, from one read of its ``/proc/PID/stat`` each."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
        except OSError:  # ended meanwhile
            continue
        # The command name, in parentheses, may hold spaces and parentheses of its own.
        fields = data[data.rindex(b")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        table[int(name)] = ProcessRow(
            ppid=int(fields[1]),
            cpu_seconds=(utime + stime) / TICKS,
            rss_bytes=int(fields[21]) * PAGE,
            started=int(fields[19]),
        )
    return table


@dataclass(frozen=True)
class KernelTree:
    """A kernel's processes (keeper, sandbox, kernel), as the sampler saw them."""

    pid: int  # the tree's root, the server's child
    language: str
    rss_mib: float
    cpu_seconds: float


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    _cmdlines: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"kernelpad exited with code {self.proc.returncode}; its log ends:\n"
                + log_tail(self.workdir / "server.log")
            )

    def kernels(self) -> list[KernelTree]:
        """Each kernel's language, RSS and CPU time so far: the process trees the server
        started, by what runs in them.

        One read of each process's ``/proc/PID/stat`` (its parent, CPU times and RSS): at 150
        interviews the sampler goes over some 800 processes a second, and psutil's way
        (``process_iter`` for the parents, then ``memory_info`` and ``cpu_times`` per process,
        three reads each) took 66 ms of this process's CPU a second, holding the GIL against
        the event loop that times the runs and edits; this takes 13."""
        table = _process_table()
        tree: dict[int, list[int]] = {}
        for pid, row in table.items():
            tree.setdefault(row.ppid, []).append(pid)
        found = []
        for child in tree.get(self.proc.pid, []):
            pids, stack = [], [child]
            while stack:
                pid = stack.pop()
                pids.append(pid)
                stack.extend(tree.get(pid, []))
            command = " ".join(self._cmdline(pid, table[pid].started) for pid in pids)
            rss = sum(table[pid].rss_bytes for pid in pids) / 2**20
            cpu = sum(table[pid].cpu_seconds for pid in pids)
            for marker, language in KERNEL_MARKERS:
                if marker in command:
                    found.append(KernelTree(child, language, rss, cpu))
                    break
        return found

    def _cmdline(self, pid: int, started: int) -> str:
        # A process's command line does not change: read once per process, not every second.
        key = (pid, started)
        if key not in self._cmdlines:
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # gone meanwhile: it is no kernel's any more
                raw = b""
            self._cmdlines[key] = raw.replace(b"\0", b" ").decode(errors="replace")
        return self._cmdlines[key]

    def rss(self) -> float:
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20


@contextlib.asynccontextmanager
async def kernelpad() -> Any:
    workdir = Path(tempfile.mkdtemp(prefix="kpload-"))
    port = free_port()
    command = kernelpad_command(
        port,
        str(workdir),
        "--kernel-pool-size",
        json.dumps(POOL),
        "--rate-limit-executions-per-minute",
        "0",
        "--code-execution-timeout",
        "30",
    )
    with open(workdir / "server.log", "wb") as log:
        # A session of its own, as a served kernelpad has: where Linux shares the CPUs by
        # session first (autogroup), the server would otherwise share one weight with this
        # harness, which stands in for clients on other machines.
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )
    server = Server(port, proc, workdir)
    try:
        deadline = time.monotonic() + 120
        while True:
            server.check_alive()
            with contextlib.suppress(OSError, HTTPClientError):
                health = await get(server, "/api/v1/health")
                if health["kernels_pooled"] >= sum(POOL.values()):
                    break
            if time.monotonic() > deadline:
                raise BenchError("kernelpad did not start, with its pool, within 120 s")
            await asyncio.sleep(0.2)
        yield server
    finally:
        stop_process(proc, 60)
        shutil.rmtree(workdir, ignore_errors=True)


async def request(server: Server, method: str, path: str, body: Any = None, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await AsyncHTTPClient().fetch(
        server.url + path,
        method=method,
        headers=headers,
        body=None if body is None else json.dumps(body),
        request_timeout=60,
    )
    return json.loads(response.body) if response.body else None


async def get(server: Server, path: str, token: str = "") -> Any:
    return await request(server, "GET", path, token=token)


# The clients


class Typist:
    """An interviewer or a candidate at the keyboard: a Yjs client of the session."""

    def __init__(self, interview: Interview, name: str, params: dict[str, str]) -> None:
        self.interview = interview
        self.name = name
        self.params = params
        self.doc: Doc[Any] = Doc()
        self.conn: WebSocketClientConnection | None = None
        self.synced = asyncio.Event()
        self.applying = False
        self.sent = 0
        self._source: Text | None = None
        self.doc.observe(self._send_local)

    async def connect(self, port: int) -> None:
        query = urllib.parse.urlencode(self.params)
        url = f"ws://127.0.0.1:{port}/ws/yjs/{self.interview.id}?{query}"
        self.conn = await websocket_connect(url, on_message_callback=self._on_message)
        self.conn.protocol.stream.set_nodelay(True)  # type: ignore[union-attr]
        self.conn.write_message(create_sync_message(self.doc), binary=True)
        await asyncio.wait_for(self.synced.wait(), 60)

    def _on_message(self, message: str | bytes | None) -> None:
        if message is None:
            if not self.interview.closing:
                code = self.conn.close_code if self.conn else None
                self.interview.errors.append(f"{self.name}'s Yjs socket closed ({code})")
            return
        if not isinstance(message, bytes) or message[0] != YMessageType.SYNC:
            return
        self.applying = True
        try:
            reply = handle_sync_message(message[1:], self.doc)
        finally:
            self.applying = False
        if reply is not None and self.conn is not None:
            self.conn.write_message(reply, binary=True)
        if message[1] == 1:  # sync step 2: the server's document
            self.synced.set()
        self.interview.arrived(self, time.perf_counter())

    def _send_local(self, event: TransactionEvent) -> None:
        if not self.applying and self.conn is not None:
            self.conn.write_message(create_update_message(event.update), binary=True)

    @property
    def source(self) -> Text:
        # Found once: building the whole notebook for every message would make the harness,
        # not the server, what is measured.
        if self._source is None:
            self._source = YNotebook(self.doc).ycells[0]["source"]
        return self._source

    @property
    def text(self) -> str:
        return str(self.source)

    def type(self) -> str:
        """A short line with a unique marker, at the start of a random line."""
        source = self.source
        # A line start drawn as random.choice over every line start would (same draws), found
        # without a Python loop over each character: that loop was a tenth of the harness's
        # CPU at 150 interviews (the text grows to thousands of characters).
        lines = str(source).split("\n")
        line = random.randrange(len(lines))
        marker = f"#{self.name}{self.sent}#"
        self.sent += 1
        source.insert(sum(map(len, lines[:line])) + line, marker + "\n")
        return marker


class Runner:
    """A client of the JSON protocol that runs code in the session, one run at a time."""

    def __init__(self, interview: Interview) -> None:
        self.interview = interview
        self.conn: WebSocketClientConnection | None = None
        self.finished: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def connect(self, port: int) -> None:
        url = f"ws://127.0.0.1:{port}/ws/sessions/{self.interview.id}"
        self.conn = await websocket_connect(url, on_message_callback=self._on_message)
        self.conn.protocol.stream.set_nodelay(True)  # type: ignore[union-attr]
        join = {
            "client_id": "runner",
            "display_name": "Runner",
            "host_token": self.interview.token,
            # As the pad's JSON socket: the code reaches it over Yjs.
            "code_updates": False,
        }
        await self.conn.write_message(json.dumps({"type": "join_session", "data": join}))

    def _on_message(self, message: str | bytes | None) -> None:
        if message is None:
            if not self.interview.closing:
                self.interview.errors.append("the runner's JSON socket closed")
            return
        data = json.loads(message)
        if data["type"] == "execution_finished":
            self.finished.put_nowait(data["data"])
        elif data["type"] == "error" and data["data"]["code"] != "throttled":
            self.interview.errors.append(f"error message: {data['data']}")

    async def run(self, language: str, code: str | None = None) -> dict[str, Any]:
        assert self.conn is not None
        started = time.perf_counter()
        code = CODE[language] if code is None else code
        message = {"type": "execute", "data": {"code": code, "language": language}}
        # This machine's clock, as the server's record of the run (see run_split).
        sent_at = time.time()
        await self.conn.write_message(json.dumps(message))
        finished = await asyncio.wait_for(self.finished.get(), 120)
        finished["latency"] = time.perf_counter() - started
        finished["sent_at"], finished["received_at"] = sent_at, time.time()
        return finished


@dataclass(eq=False)
class Interview:
    index: int
    id: str
    token: str
    languages: tuple[str, ...]
    typists: list[Typist] = field(default_factory=list)
    runner: Runner | None = None
    # marker -> (sent at, who sent it, who has not got it yet)
    pending: dict[str, tuple[float, Typist, Typist]] = field(default_factory=dict)
    fanout: list[float] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    closing: bool = False

    def arrived(self, typist: Typist, at: float) -> None:
        waiting = [m for m, (_, _, to) in self.pending.items() if to is typist]
        if not waiting:
            return
        text = typist.text
        for marker in waiting:
            if marker in text:
                sent_at, _, _ = self.pending.pop(marker)
                self.fanout.append(at - sent_at)

    def type(self, typist: Typist) -> None:
        other = self.typists[1] if typist is self.typists[0] else self.typists[0]
        sent_at = time.perf_counter()
        marker = typist.type()
        self.pending[marker] = (sent_at, typist, other)

    def add_clients(self, host: dict[str, str], candidate: dict[str, str]) -> None:
        """Its two typists (joining with ``host`` and ``candidate``) and its runner."""
        self.typists = [Typist(self, "h", host), Typist(self, "c", candidate)]
        self.runner = Runner(self)

    def close(self) -> None:
        """Everyone leaves: its sockets closed, which is no error now."""
        self.closing = True
        for typist in self.typists:
            if typist.conn:
                typist.conn.close()
        if self.runner and self.runner.conn:
            self.runner.conn.close()


async def connect(port: int, interviews: list[Interview]) -> None:
    """Every interview's typists and runner connected to the server on ``port``."""
    await asyncio.gather(
        *(t.connect(port) for i in interviews for t in i.typists),
        *(i.runner.connect(port) for i in interviews if i.runner),
    )


async def edits_lost(interviews: list[Interview]) -> int:
    """The edits still on their way after up to SETTLE_TIMEOUT seconds: lost."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while any(i.pending for i in interviews) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return sum(len(i.pending) for i in interviews)


async def open_interviews(server: Server, count: int) -> list[Interview]:
    interviews = []
    for index in range(count):
        created = await request(
            server, "POST", "/api/v1/sessions", {"host_name": f"Interviewer {index}"}
        )
        languages = ("python", "javascript") if index % 3 == 0 else ("python",)
        interview = Interview(index, created["session_id"], created["host_token"], languages)
        host = {"client_id": "host", "display_name": "Host", "host_token": interview.token}
        interview.add_clients(host, {"client_id": "cand", "display_name": "Candidate"})
        interviews.append(interview)
    await connect(server.port, interviews)
    return interviews


# One phase


class Sampler:
    """Every second: the server's CPU and memory, the kernels', the harness's own, and the
    whole machine's, so that what else ran beside the server shows (100% = one core)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.process = psutil.Process(server.proc.pid)
        self.me = psutil.Process()
        self.samples: list[dict[str, float]] = []
        self.start = time.monotonic()
        self.process.cpu_percent()
        self.me.cpu_percent()
        psutil.cpu_percent()
        self.cores = psutil.cpu_count() or 1
        self.times = psutil.cpu_times()
        self.kernel_cpu = {tree.pid: tree.cpu_seconds for tree in server.kernels()}
        self.at = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            kernels = await asyncio.to_thread(self.server.kernels)
            now = time.monotonic()
            # Kernels started since the last sample count from zero: their whole CPU is recent.
            used = sum(tree.cpu_seconds - self.kernel_cpu.get(tree.pid, 0.0) for tree in kernels)
            self.kernel_cpu = {tree.pid: tree.cpu_seconds for tree in kernels}
            elapsed, self.at = now - self.at, now
            self.samples.append(
                {
                    "t": round(now - self.start, 1),
                    "server_cpu_percent": self.process.cpu_percent(),
                    "server_rss_mib": round(self.server.rss(), 1),
                    "kernels": len(kernels),
                    "kernels_rss_mib": round(sum(tree.rss_mib for tree in kernels), 1),
                    "kernels_cpu_percent": round(100 * max(used, 0.0) / elapsed, 1),
                    "harness_cpu_percent": self.me.cpu_percent(),
                    "machine_cpu_percent": round(psutil.cpu_percent() * self.cores, 1),
                    "machine_steal_percent": self._stolen(),
                }
            )

    def _stolen(self) -> float:
        """The CPU time the hypervisor gave to others while this machine's processes were
        ready to run, since the last sample (% of one core): a virtual machine's stall, which
        slows every process here at once and is no change's doing."""
        times, before = psutil.cpu_times(), self.times
        self.times = times
        total = sum(times) - sum(before)
        stolen = getattr(times, "steal", 0.0) - getattr(before, "steal", 0.0)
        return round(100 * self.cores * stolen / total, 1) if total > 0 else 0.0


async def kernels_quiet(server: Server, percent: float, timeout: float) -> float:
    """Seconds until the kernels, all together, use under ``percent`` of one core over a
    second (or ``timeout``)."""
    began = time.monotonic()
    before = {tree.pid: tree.cpu_seconds for tree in await asyncio.to_thread(server.kernels)}
    while time.monotonic() - began < timeout:
        at = time.monotonic()
        await asyncio.sleep(1.0)
        kernels = await asyncio.to_thread(server.kernels)
        used = sum(tree.cpu_seconds - before.get(tree.pid, 0.0) for tree in kernels)
        before = {tree.pid: tree.cpu_seconds for tree in kernels}
        if 100 * used / (time.monotonic() - at) < percent:
            break
    return time.monotonic() - began


class GcTimer:
    """A ``gc.callbacks`` entry that times each of this process's collections."""

    def __init__(self, pauses: list[float]) -> None:
        self.pauses = pauses
        self.began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.began = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self.began)


async def loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late this process's event loop wakes up: the part of every latency measured here
    that is the harness's own."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.05)
        lags.append(time.perf_counter() - before - 0.05)


async def type_on(interview: Interview, typist: Typist, rate: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), random.expovariate(rate))
        if not stop.is_set():
            interview.type(typist)


async def run_on(interview: Interview, every: float, stop: asyncio.Event) -> None:
    assert interview.runner is not None
    turn = 0
    with contextlib.suppress(TimeoutError):  # a long ``every`` must not hold the phase's end
        await asyncio.wait_for(stop.wait(), random.uniform(0, every))
    while not stop.is_set():
        language = interview.languages[turn % len(interview.languages)]
        turn += 1
        try:
            finished = await interview.runner.run(language)
        except TimeoutError:
            interview.errors.append(f"a {language} run did not finish within 120 s")
            continue
        if finished["status"] != "ok":
            interview.errors.append(f"a {language} run ended {finished['status']}")
        interview.runs.append({**finished, "language": language})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), random.uniform(0.5, 1.5) * every)


async def keep_busy(interview: Interview, stop: asyncio.Event) -> None:
    """A candidate whose code keeps a core busy all along (an accidental O(n^3), a loop that
    does not end): what the other interviews must not feel much of."""
    assert interview.runner is not None
    while not stop.is_set():
        finished = await interview.runner.run("python", BUSY_CODE)
        if finished["status"] != "ok":
            interview.errors.append(f"a busy run ended {finished['status']}")


async def phase(sessions: int, args: argparse.Namespace, run_every: float) -> dict[str, Any]:
    print(f"\n{sessions} session(s):", flush=True)
    async with kernelpad() as server:
        await asyncio.sleep(2)
        baseline_rss = server.rss()
        interviews = await open_interviews(server, sessions)
        # Warm-up: each session's first run in each of its languages starts its kernels, at
        # most WARM_AT_ONCE at a time: 200 kernels' first runs at once on 2 cores (a hundred
        # seconds of CPU) left some Deno kernel's first run without a CPU for 30 s, its time
        # limit, in two of four runs at 150.
        began = time.perf_counter()
        at_once = asyncio.Semaphore(WARM_AT_ONCE)

        async def first_run(runner: Runner, language: str) -> dict[str, Any]:
            async with at_once:
                return await runner.run(language)

        warm = await asyncio.gather(
            *(first_run(i.runner, lang) for i in interviews for lang in i.languages if i.runner)
        )
        warmup = time.perf_counter() - began
        failed = [w for w in warm if w["status"] != "ok"]
        if failed:
            raise BenchError(f"warm-up runs failed: {failed[:3]}")
        print(f"  warm-up: {len(warm)} first runs in {warmup:.1f} s", flush=True)
        # S interviews starting in the same second is the harness's doing, not a day's traffic:
        # what new kernels do after their first run (the pool's replacements starting) is
        # waited out, so the timed phase measures interviews going on, not kernels booting.
        quiet = await kernels_quiet(server, QUIET_CPU_PERCENT, QUIET_TIMEOUT)
        print(f"  kernels quiet (under {QUIET_CPU_PERCENT:g}% CPU) after {quiet:.1f} s", flush=True)

        # Busy candidates only beside others: the smallest S is the baseline.
        busy = args.busy if sessions > args.busy else 0
        stop = asyncio.Event()
        sampler = Sampler(server)
        lags: list[float] = []
        # What setting up made (documents, sockets) is kept to the end: set aside, so that the
        # harness's own full collections do not hold its loop (and every figure it takes).
        gc.collect()
        gc.freeze()
        gc_pauses: list[float] = []
        gc.callbacks.append(timer := GcTimer(gc_pauses))
        scraped = await server_histograms(server.url)
        tasks = [asyncio.create_task(sampler.run(stop)), asyncio.create_task(loop_lag(lags, stop))]
        for interview in interviews:
            for typist in interview.typists:
                tasks.append(asyncio.create_task(type_on(interview, typist, args.edit_rate, stop)))
            if interview.index < busy:
                tasks.append(asyncio.create_task(keep_busy(interview, stop)))
            else:
                tasks.append(asyncio.create_task(run_on(interview, run_every, stop)))
        await asyncio.sleep(args.duration)
        stop.set()
        await asyncio.gather(*tasks)
        # The server's own waits over the phase: its event loop's lag, and its database's.
        server_waits = {
            name: histogram_summary(scraped.get(name, []), buckets)
            for name, buckets in (await server_histograms(server.url)).items()
            if name in SERVER_WAITS
        }
        gc.callbacks.remove(timer)
        gc.unfreeze()
        server.check_alive()

        lost_edits = await edits_lost(interviews)
        await asyncio.sleep(3)  # idle, for memory
        idle_rss = server.rss()
        kernels = await asyncio.to_thread(server.kernels)
        checks = await verify(server, interviews)

        for interview in interviews:
            interview.close()
        await wait_for(lambda: connected(server, 0), 30, "everyone to leave")
        checks["stored_notebooks_differing"] = await stored_differences(server, interviews)

        for interview in interviews:
            await request(
                server, "DELETE", f"/api/v1/sessions/{interview.id}", token=interview.token
            )
        pooled = sum(POOL.values())
        await wait_for(lambda: kernel_count(server, pooled), 60, "the kernels to go")
        after_end = await asyncio.to_thread(server.kernels)

    fanout = [s for i in interviews for s in i.fanout]
    runs = [r for i in interviews for r in i.runs]
    errors = [e for i in interviews for e in i.errors]
    by_language: dict[str, list[float]] = {}
    for tree in kernels:
        by_language.setdefault(tree.language, []).append(tree.rss_mib)
    samples = sampler.samples
    result = {
        "sessions": sessions,
        "busy_sessions": busy,
        "warmup_seconds": round(warmup, 2),
        "kernels_quiet_after_seconds": round(quiet, 1),
        "edits_sent": sum(t.sent for i in interviews for t in i.typists),
        "edits_lost": lost_edits,
        "edit_fanout": summary(fanout),
        "runs": {
            "total": summary([r["latency"] for r in runs]),
            "queued": summary([r.get("queued_time", 0) / 1000 for r in runs]),
            "kernel": summary([r["execution_time"] / 1000 for r in runs]),
            "overhead": summary(
                [
                    r["latency"] - r.get("queued_time", 0) / 1000 - r["execution_time"] / 1000
                    for r in runs
                ]
            ),
            "by_language": {
                lang: summary([r["latency"] for r in runs if r["language"] == lang])
                for lang in CODE
                if any(r["language"] == lang for r in runs)
            },
            **run_split(runs),
        },
        "errors": len(errors),
        "error_examples": errors[:10],
        "server_cpu_percent_mean": _mean([s["server_cpu_percent"] for s in samples]),
        "server_cpu_percent_max": max((s["server_cpu_percent"] for s in samples), default=None),
        "harness_cpu_percent_mean": _mean([s["harness_cpu_percent"] for s in samples]),
        "kernels_cpu_percent_mean": _mean([s["kernels_cpu_percent"] for s in samples]),
        "machine_cpu_percent_mean": _mean([s["machine_cpu_percent"] for s in samples]),
        "machine_steal_percent_mean": _mean([s["machine_steal_percent"] for s in samples]),
        "machine_steal_percent_max": max(
            (s["machine_steal_percent"] for s in samples), default=None
        ),
        "harness_gc_pauses": summary(gc_pauses),
        "harness_loop_lag": summary(lags),
        "server_loop_lag": server_waits.get("kernelpad_event_loop_lag_seconds"),
        "server_database_write": server_waits.get("kernelpad_database_write_seconds"),
        "kernels_own_time": server_waits.get("kernelpad_kernel_busy_seconds"),
        "server_rss_mib_max": max((s["server_rss_mib"] for s in samples), default=None),
        "kernels_alive_max": max((s["kernels"] for s in samples), default=0),
        "kernels_rss_mib_max": max((s["kernels_rss_mib"] for s in samples), default=None),
        "server_rss_mib_baseline": round(baseline_rss, 1),
        "memory_per_idle_session_mib": round((idle_rss - baseline_rss) / sessions, 2),
        "memory_per_idle_kernel_mib": {
            lang: round(sum(values) / len(values), 1) for lang, values in by_language.items()
        },
        "kernels_after_all_ended": len(after_end),
        "checks": checks,
        "samples": samples,
    }
    report(result)
    return result


def run_split(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each run's latency in three, by the server's record of it (its times are this
    machine's clock, as the client's): to the server's start of it (the client's send, the
    server reading and checking it), the server's (waiting for the kernel, the kernel, the
    record built), and from its end to the client having ``execution_finished`` (stored,
    told, read by the client: the harness's own loop is in this one and the first)."""
    timed = [r for r in runs if "started_at" in r and "sent_at" in r]
    return {
        "inbound": summary([r["started_at"] - r["sent_at"] for r in timed]),
        "server": summary([r["finished_at"] - r["started_at"] for r in timed]),
        "outbound": summary([r["received_at"] - r["finished_at"] for r in timed]),
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


async def wait_for(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.2)


async def connected(server: Server, count: int) -> bool:
    response = await AsyncHTTPClient().fetch(server.url + "/metrics")
    for line in response.body.decode().splitlines():
        if line.startswith("kernelpad_participants_connected "):
            return float(line.split()[1]) == count
    return False


async def kernel_count(server: Server, count: int) -> bool:
    return len(await asyncio.to_thread(server.kernels)) <= count


async def verify(server: Server, interviews: list[Interview]) -> dict[str, int]:
    """Nothing lost: the typists agree with each other and the server; every run a client saw
    finish is in the stored history. (Each run's record gives the run its ``started_at`` and
    ``finished_at``, for :func:`run_split`.)"""
    texts_differing = runs_missing = 0
    for interview in interviews:
        host, candidate = interview.typists
        live = (await get(server, f"/api/v1/sessions/{interview.id}"))["code"]
        if not host.text == candidate.text == live:
            texts_differing += 1
        stored: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            page = await get(
                server,
                f"/api/v1/sessions/{interview.id}/executions?limit=100&offset={offset}",
                interview.token,
            )
            stored.update((e["execution_id"], e) for e in page["executions"])
            offset += 100
            if offset >= page["total"]:
                break
        runs_missing += sum(1 for r in interview.runs if r["execution_id"] not in stored)
        for run in interview.runs:
            if (record := stored.get(run["execution_id"])) is not None:
                for name in ("started_at", "finished_at"):
                    run[name] = datetime.fromisoformat(record[name]).timestamp()
    return {"texts_differing": texts_differing, "runs_missing_from_history": runs_missing}


async def stored_differences(server: Server, interviews: list[Interview]) -> int:
    """Sessions whose stored notebook (read back once everyone left) is not what they typed."""
    differing = 0
    for interview in interviews:
        notebook = await get(
            server, f"/api/v1/sessions/{interview.id}/notebook.ipynb", interview.token
        )
        if notebook["cells"][0]["source"] != interview.typists[0].text:
            differing += 1
    return differing


def report(result: dict[str, Any]) -> None:
    runs, fanout = result["runs"], result["edit_fanout"]
    if result["busy_sessions"]:
        print(f"  of which busy (a core's worth of loop each): {result['busy_sessions']}")
    print(
        f"  edits: {result['edits_sent']} sent, {result['edits_lost']} lost;"
        f" fan-out p50 {fanout['p50_ms']} ms, p99 {fanout['p99_ms']} ms",
        flush=True,
    )
    print(
        f"  runs: {runs['total']['count']}; p50 {runs['total']['p50_ms']} ms,"
        f" p99 {runs['total']['p99_ms']} ms (queued p99 {runs['queued']['p99_ms']} ms,"
        f" kernel p99 {runs['kernel']['p99_ms']} ms, overhead p99 {runs['overhead']['p99_ms']} ms)",
        flush=True,
    )
    print(
        f"  server: CPU {result['server_cpu_percent_mean']}% mean,"
        f" RSS {result['server_rss_mib_max']} MiB max,"
        f" {result['memory_per_idle_session_mib']} MiB per idle session;"
        f" kernels: {result['kernels_alive_max']} alive, {result['kernels_rss_mib_max']} MiB,"
        f" per idle kernel {result['memory_per_idle_kernel_mib']};"
        f" harness CPU {result['harness_cpu_percent_mean']}%,"
        f" its loop lag p99 {result['harness_loop_lag']['p99_ms']} ms,"
        f" its longest GC pause {result['harness_gc_pauses']['max_ms']} ms",
        flush=True,
    )
    own = result["kernels_own_time"] or {}
    print(
        f"  runs split: to the server p99 {runs['inbound']['p99_ms']} ms, in it p99"
        f" {runs['server']['p99_ms']} ms, back p99 {runs['outbound']['p99_ms']} ms"
        f" (p50 {runs['inbound']['p50_ms']}, {runs['server']['p50_ms']},"
        f" {runs['outbound']['p50_ms']}); in it, the kernels' own time by their clocks p99"
        f" {own.get('p99_ms')} ms (p50 {own.get('p50_ms')})",
        flush=True,
    )
    lag, write = result["server_loop_lag"] or {}, result["server_database_write"] or {}
    print(
        f"  the server's waits: event loop lag p50 {lag.get('p50_ms')} ms, p99"
        f" {lag.get('p99_ms')} ms; database writes p50 {write.get('p50_ms')} ms, p99"
        f" {write.get('p99_ms')} ms",
        flush=True,
    )
    print(
        f"  CPU, mean % of one core: server {result['server_cpu_percent_mean']},"
        f" kernels {result['kernels_cpu_percent_mean']},"
        f" harness {result['harness_cpu_percent_mean']},"
        f" whole machine {result['machine_cpu_percent_mean']} of {100 * (os.cpu_count() or 1)};"
        f" stolen by the hypervisor {result['machine_steal_percent_mean']} mean,"
        f" {result['machine_steal_percent_max']} in the worst second",
        flush=True,
    )
    print(
        f"  errors: {result['errors']}; checks: {result['checks']};"
        f" kernels after every session ended: {result['kernels_after_all_ended']}",
        flush=True,
    )


def knee(results: list[dict[str, Any]]) -> int | None:
    """The largest S up to which (each S from the smallest on) the p99 run latency, language
    by language, is under twice the smallest S's (one interview alone), with nothing lost
    and no error. Language by language, because the mix differs: the first interview runs
    Python and JavaScript in turn, a third of the others do; all together, the smallest S's
    p99 would be JavaScript's, the largest S's mostly Python's. Each S below must pass too: a
    lucky run at 50 is no capacity if 25 failed."""
    base = baselines(results)
    last = None
    for r in sorted(results, key=lambda r: int(r["sessions"])):
        fits = clean(r) and all(
            figures["p99_ms"] < 2 * base[language]
            for language, figures in r["runs"]["by_language"].items()
            if language in base
        )
        if not fits:
            break
        last = r["sessions"]
    return last


def baselines(results: list[dict[str, Any]]) -> dict[str, float]:
    """Each language's p99 run latency at the smallest S."""
    return {
        language: figures["p99_ms"]
        for language, figures in results[0]["runs"]["by_language"].items()
        if figures["p99_ms"] is not None
    }


def clean(result: dict[str, Any]) -> bool:
    """No error, no edit lost, every check passed."""
    return (
        result["errors"] == 0 and result["edits_lost"] == 0 and not any(result["checks"].values())
    )


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sessions = [r["sessions"] for r in results]
    fig, (latency, memory, over_time) = plt.subplots(1, 3, figsize=(15, 4.2))
    latency.plot(sessions, [r["runs"]["total"]["p99_ms"] for r in results], "o-", label="run p99")
    latency.plot(sessions, [r["runs"]["total"]["p50_ms"] for r in results], "o--", label="run p50")
    latency.plot(sessions, [r["edit_fanout"]["p99_ms"] for r in results], "s-", label="edit p99")
    for (language, base), color in zip(baselines(results).items(), ("C3", "C4"), strict=False):
        p99 = [r["runs"]["by_language"].get(language, {}).get("p99_ms") for r in results]
        latency.plot(sessions, p99, ".-", color=color, alpha=0.6, label=f"{language} run p99")
        latency.axhline(
            2 * base, color=color, linestyle=":", label=f"2x {language} p99 at {sessions[0]}"
        )
    if (capacity := knee(results)) is not None:
        latency.axvline(capacity, color="green", alpha=0.4, label=f"knee: {capacity}")
    latency.set_xlabel("concurrent interviews")
    latency.set_ylabel("latency (ms)")
    latency.set_title("Latency")
    latency.grid(alpha=0.3)
    latency.legend(fontsize=7, framealpha=0.6)  # eight lines: small, and the curves show through
    memory.plot(sessions, [r["server_rss_mib_max"] for r in results], "o-", label="server RSS")
    memory.plot(sessions, [r["kernels_rss_mib_max"] for r in results], "s-", label="kernels RSS")
    memory.set_xlabel("concurrent interviews")
    memory.set_ylabel("MiB (max during the run)")
    memory.set_title("Memory")
    memory.grid(alpha=0.3)
    memory.legend()
    largest = results[-1]
    times = [s["t"] for s in largest["samples"]]
    for key, label in (
        ("server_cpu_percent", "server CPU %"),
        ("kernels_cpu_percent", "kernels CPU %"),
        ("harness_cpu_percent", "harness CPU %"),
        ("machine_cpu_percent", "machine CPU %"),
    ):
        over_time.plot(times, [s[key] for s in largest["samples"]], label=label)
    over_time.set_xlabel("seconds of load")
    over_time.set_ylabel("CPU % (100 = one core)")
    over_time.set_title(f"{largest['sessions']} interviews, over time")
    over_time.grid(alpha=0.3)
    rss = over_time.twinx()
    rss.plot(times, [s["server_rss_mib"] for s in largest["samples"]], "g-", label="server RSS")
    rss.set_ylabel("server RSS (MiB)")
    over_time.legend(loc="upper left")
    rss.legend(loc="upper right")
    fig.suptitle("kernelpad under load: each interview has 2 typists and a run every few seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,25,50,100,150", help="S values, comma-separated")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per S")
    parser.add_argument("--edit-rate", type=float, default=2.0, help="edits a second a typist")
    parser.add_argument("--run-every", type=float, default=5.0, help="seconds between runs")
    parser.add_argument(
        "--baseline-run-every",
        type=float,
        default=0.25,
        help="seconds between runs at the smallest S (the baseline): at 5 s, one interview"
        " makes 11 runs in a minute, Python's and JavaScript's in turn, and the p99 of each"
        " language's 5 or 6 runs is their slowest",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="of the S interviews (beyond the baseline), this many run a loop that keeps a core"
        " busy instead of the trivial runs",
    )
    parser.add_argument("--output", default="load", help="name of the results files")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where they go")
    add_client_loop(parser)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    counts = sorted({int(s) for s in args.sessions.split(",")})
    results = [
        await phase(count, args, args.baseline_run_every if n == 0 else args.run_every)
        for n, count in enumerate(counts)
    ]
    capacity = knee(results)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = {
        "machine": machine_info(),
        "settings": {**vars(args), "pool": POOL},
        "results": results,
        "knee_sessions": capacity,
    }
    (args.results_dir / f"{args.output}.json").write_text(
        json.dumps(out, indent=2, default=str) + "\n"
    )
    plot(results, args.results_dir / f"{args.output}.png")
    print(
        f"\nknee: {capacity} interviews (p99 run latency of each language under 2x its p99 at"
        f" {counts[0]}, no error, nothing lost)"
    )
    print(f"written: {args.results_dir / args.output}.json and .png")


if __name__ == "__main__":
    try:
        arguments = parse_args()
        run_on_kernelpads_loop(main(arguments), arguments.client_loop)
    except BenchError as exc:
        raise SystemExit(f"load: {exc}") from None
