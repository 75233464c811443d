"""How long kernelpad takes to run code, next to what a bare Jupyter kernel takes, per language.

kernelpad runs interview code on real Jupyter kernels behind an HTTP API. This benchmark tells,
for each language (Python, JavaScript, TypeScript, Java; ``--languages`` picks some), how much
kernelpad's layers (HTTP, sessions, the SQLite history, its message loop) add to a kernel's own
speed, and whether the kernel pool hides a kernel's boot time from a session's first run:

1. Cold kernel start through jupyter_client directly: ``start_kernel`` + ``wait_for_ready``.
2. Time from creating a kernelpad session (``POST /api/v1/sessions`` with the language as
   ``initial_language``) to its first result (``POST .../execute`` of the trivial code), median:
   a. with the kernel pool: a server with ``--kernel-pool-size '{"LANG": 1}'``, its pooled kernel
      ready before each repetition;
   b. without a pool (``'{"LANG": 0}'``): every session boots a kernel.
3. Trivial run (``1+1``) latency, median and p95, on a warm kernel:
   a. kernelpad: ``POST /api/v1/sessions/{id}/execute`` over one keep-alive HTTP connection;
   b. jupyter_client directly: ``execute_interactive`` on a kernel started here (the floor). For a
      language whose kernel may send output after its idle status (Deno's, for JavaScript and
      TypeScript), kernelpad sends the language's done probe after reply and idle
      (``Language.done_probe`` in ``kernelpad.kernels.languages``, i.e. ``DENO_DONE_PROBE``): a
      silent request that prints a marker once everything the run printed is out, and takes the
      run's output until the marker and the probe's reply are in. Such languages get two figures:
      plain ``execute_interactive`` (which can lose late output) and ``execute_interactive``
      followed by the same probe ("settled"); the target compares with the latter. A language
      whose kernel only speaks TCP (JavaScript, TypeScript, Java) gets one more: the same
      (settled where there is a probe) on a second kernel that kernelpad's keeper started in a
      network namespace of its own, reached as kernelpad reaches it, through the keeper's
      relay (``relayed_kernel``; where no such namespace can be made, not measured): the
      relay's share of a run;
   c. Python only: a new Python process per run, the original design's approach;
   d. Python only: kernelpad's JSON socket, as the pad sends a run: a cell's (its outputs
      stored in the notebook before it is told finished) and code of no cell.
   f. The server floor (``server_floor.py``): the least any server between client and kernel
      does, a Tornado process holding a jupyter_client connection to a kernel of its own,
      answering ``POST /run`` (keep-alive HTTP, as 3a) once the run is settled as kernelpad
      settles it; g. for Python, the same over its WebSocket (as 3e). What 3a and 3e take
      beyond them is kernelpad's own; what they take beyond 3b is the hop's, which no server
      can leave out.
   The series of 3a, 3b, 3d and 3f-g take turns, ten runs each at a time, on one kernelpad
   server and kernels started here, all warm: measured one after the other, the machine's
   speed drifted between them by more than kernelpad's overhead.
4. Ratios against the targets: kernelpad / jupyter_client for a trivial run (at most 1.25x) and
   pooled first result / cold kernel start (at most 0.1).

It also counts the runs whose result (the trivial code's ``execute_result``) was missing: in plain
``execute_interactive`` when it returned, after the probe, and in kernelpad's answers.

The languages are measured one after the other, each with its own kernelpad servers, so that only
one language's kernels compete for the CPUs. Java kernels are slow to start and to run a snippet,
so Java and C++ get fewer runs (``--java-runs``, ``--java-repeats``); the table shows every count.

The figures are printed and written to ``bench/results/execute_latency.json``. Missing a target is
reported in words only: this is a measurement, not a test, and it exits 0 either way.

Run it with ``make bench`` or ``.venv/bin/python bench/execute_latency.py [--languages python]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import http.client
import json
import math
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness import (
    BenchError,
    SessionSocket,
    free_port,
    kernelpad_command,
    log_tail,
    machine_info,
    stop_process,
    verdict,
)
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from late_output import drain_late
from server_floor import FloorRuns, floor_server

from kernelpad.kernels import keeper_command
from kernelpad.kernels.kept import Lease
from kernelpad.kernels.languages import KNOWN_LANGUAGES
from kernelpad.kernels.runtime import lease_path
from kernelpad.kernels.sandbox import relay_problem

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "execute_latency.json"
TRIVIAL_TARGET = 1.25  # kernelpad / jupyter_client, trivial run on a warm kernel
POOL_TARGET = 0.1  # pooled first result / cold kernel start
SERVER_START_TIMEOUT = 60.0
POOL_READY_TIMEOUT = 120.0
KERNEL_START_TIMEOUT = 60.0
CODE_EXECUTION_TIMEOUT = 30  # seconds; a slow first Java run must never time out
# Timed runs of one series before the next series takes its turn (see interleaved()).
BLOCK = 10
# kernelpad's log lines look like "2026-11-26 20:30:52,714 WARNING kernelpad.x: ..."
SERVER_LOG_PROBLEM = re.compile(r"^\d{4}-\d\d-\d\d \S+ (WARNING|ERROR|CRITICAL) ")


@dataclass(frozen=True)
class BenchLanguage:
    """A language as this benchmark drives it, directly and through kernelpad."""

    id: str
    kernel_name: str
    #: ZeroMQ transport for the kernels started here: ipykernel does Unix sockets (as kernelpad
    #: uses them); Deno's and JJava's kernels only TCP.
    transport: str
    code: str
    #: The done probe kernelpad sends after a run's reply and idle status ("": none).
    done_probe: str = ""
    #: Environment kernelpad adds for the language's kernels; ``{data_dir}`` is its data folder.
    env: dict[str, str] = field(default_factory=dict)


def _bench_language(language_id: str, kernel_name: str, transport: str) -> BenchLanguage:
    known = {language.id: language for language in KNOWN_LANGUAGES}[language_id]
    return BenchLanguage(
        language_id,
        kernel_name,
        transport,
        "1+1",
        done_probe=known.done_probe,
        env=dict(known.env),
    )


LANGUAGES: dict[str, BenchLanguage] = {
    lang.id: lang
    for lang in (
        _bench_language("python", "python3", "ipc"),
        _bench_language("javascript", "deno", "tcp"),
        _bench_language("typescript", "deno", "tcp"),
        _bench_language("java", "java", "tcp"),
        _bench_language("cpp", "cpp", "ipc"),
    )
}

# Warnings and errors kernelpad logged during the benchmark, and servers that would not stop.
SERVER_PROBLEMS: list[str] = []


@dataclass
class Stats:
    """Summary of one series of timings, in milliseconds."""

    runs: int
    median_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        ms = sorted(s * 1000 for s in seconds)
        p95 = ms[max(0, math.ceil(0.95 * len(ms)) - 1)]  # nearest rank
        return cls(
            len(ms),
            round(statistics.median(ms), 3),
            round(p95, 3),
            round(ms[0], 3),
            round(ms[-1], 3),
        )


@dataclass
class Counts:
    """How many runs of a series (``of``) showed something (``seen``)."""

    seen: int = 0
    of: int = 0

    def add(self, seen: bool) -> None:
        self.seen += int(seen)
        self.of += 1

    def __str__(self) -> str:
        return f"{self.seen}/{self.of}"


# kernelpad servers


class Api:
    """A kernelpad API client on one keep-alive HTTP connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=CODE_EXECUTION_TIMEOUT + 30
        )

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()  # read it all, or the connection cannot be reused
        return response.status, json.loads(data) if data else {}

    def health(self) -> dict[str, Any]:
        status, data = self.call("GET", "/api/v1/health")
        if status != 200:
            raise BenchError(f"GET /api/v1/health answered {status}: {data}")
        return data

    def create_session(self, language: str) -> tuple[str, str]:
        """A new session's id and host token."""
        body = {"host_name": "bench", "initial_language": language}
        status, data = self.call("POST", "/api/v1/sessions", body)
        if status != 201:
            raise BenchError(f"creating a {language} session answered {status}: {data}")
        return data["session_id"], data["host_token"]

    def execute(self, session_id: str, code: str) -> dict[str, Any]:
        status, data = self.call("POST", f"/api/v1/sessions/{session_id}/execute", {"code": code})
        if status != 200:
            raise BenchError(f"running {code!r} in session {session_id}: HTTP {status}, {data}")
        if data.get("status") != "ok":
            raise BenchError(
                f"running {code!r} in session {session_id} ({data.get('language')}) ended"
                f" {data.get('status')!r} instead of 'ok';"
                f" stderr: {data.get('stderr', '')[-500:]!r}"
            )
        return data

    def end_session(self, session_id: str, token: str) -> None:
        status, data = self.call("DELETE", f"/api/v1/sessions/{session_id}", token=token)
        if status != 200:
            raise BenchError(f"ending session {session_id} answered {status}: {data}")

    def close(self) -> None:
        self.conn.close()


def has_result(data: dict[str, Any]) -> bool:
    """Whether a kernelpad run's outputs hold the trivial code's ``execute_result``."""
    return any(output.get("output_type") == "execute_result" for output in data["outputs"])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def kernelpad_server(lang: BenchLanguage, pool_size: int) -> Iterator[Api]:
    """A kernelpad server in a subprocess, with its own data dir, keeping ``pool_size`` kernels of
    ``lang`` (and none of any other language) ready; stopped with SIGTERM.

    Its log (and its kernels' stderr) goes to a file; the warnings and errors in it are kept in
    ``SERVER_PROBLEMS`` and printed at the end.
    """
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="kpbench-data-"))
    log_path = data_dir / "server.log"
    cmd = kernelpad_command(
        port,
        str(data_dir),
        "--rate-limit-executions-per-minute",
        "0",
        "--ws-messages-per-second",
        "1000000",
        "--code-execution-timeout",
        str(CODE_EXECUTION_TIMEOUT),
        "--kernel-pool-size",
        json.dumps({lang.id: pool_size}),
    )
    api: Api | None = None
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        try:

            def answers() -> bool:
                if proc.poll() is not None:
                    raise BenchError(
                        f"kernelpad exited with code {proc.returncode} on start; its log ends:\n"
                        + log_tail(log_path)
                    )
                with contextlib.closing(Api(port)) as probe:
                    try:
                        return probe.call("GET", "/api/v1/health")[0] == 200
                    except OSError:
                        return False

            wait_until(answers, SERVER_START_TIMEOUT, f"kernelpad to answer on port {port}")
            api = Api(port)
            yield api
        finally:
            if api is not None:
                api.close()
            if not stop_process(proc):
                SERVER_PROBLEMS.append(
                    f"{lang.id} server (pool {pool_size}): did not stop within 30 s of SIGTERM"
                )
            with contextlib.suppress(OSError):
                for line in log_path.read_text(errors="replace").splitlines():
                    if SERVER_LOG_PROBLEM.match(line):
                        SERVER_PROBLEMS.append(f"{lang.id} server (pool {pool_size}): {line}")
            shutil.rmtree(data_dir, ignore_errors=True)


def wait_for_pool(api: Api) -> None:
    """Wait until the server's one pooled kernel is ready (its only pool is the language's)."""
    wait_until(lambda: api.health()["kernels_pooled"] >= 1, POOL_READY_TIMEOUT, "a pooled kernel")


# Kernels started here through jupyter_client


# A kernel that listens on TCP binds the ports jupyter_client found free; meanwhile another
# process's outgoing connection may take one as its own port (the two draw from the same
# range). Only such a start is tried again, with new ports.
PORT_TAKEN = "Address already in use"
PORT_TRIES = 3


def kernel_env(lang: BenchLanguage, workdir: Path) -> dict[str, str]:
    """This process's environment with what kernelpad adds for ``lang``'s kernels (e.g.
    ``NO_COLOR=1`` for Deno), their data folder being ``workdir``."""
    env = dict(os.environ)
    for key, value in lang.env.items():
        env[key] = value.replace("{data_dir}", str(workdir))
    return env


@contextlib.asynccontextmanager
async def jupyter_kernel(
    lang: BenchLanguage, workdir: Path, name: str, started: list[float] | None = None
) -> AsyncIterator[AsyncKernelClient]:
    """A started kernel of ``lang`` and a ready client; files and sockets under ``workdir``.

    The kernel gets the environment kernelpad gives it (e.g. ``NO_COLOR=1`` for Deno). If
    ``started`` is given, the seconds from ``start_kernel`` to ``wait_for_ready`` are appended.
    """
    env = kernel_env(lang, workdir)
    log_path = workdir / f"{name}.log"
    for attempt in range(1, PORT_TRIES + 1):
        km = AsyncKernelManager(
            kernel_name=lang.kernel_name,
            connection_file=str(workdir / f"{name}.json"),
            **({"transport": "ipc", "ip": str(workdir / name)} if lang.transport == "ipc" else {}),
        )
        kc: AsyncKernelClient | None = None
        with open(log_path, "wb") as log:
            try:
                start = time.perf_counter()
                await km.start_kernel(cwd=str(workdir), env=env, stdout=log, stderr=log)
                kc = km.client()
                kc.start_channels()
                try:
                    await kc.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
                except RuntimeError as exc:
                    if attempt < PORT_TRIES and PORT_TAKEN in log_tail(log_path):
                        continue  # (after the finally below has cleaned this one up)
                    raise BenchError(
                        f"the {lang.kernel_name} kernel did not get ready: {exc}; its log ends:\n"
                        + log_tail(log_path)
                    ) from exc
                if started is not None:
                    started.append(time.perf_counter() - start)
                yield kc
                return
            finally:
                if kc is not None:
                    kc.stop_channels()
                if km.has_kernel:
                    await km.shutdown_kernel(now=True)


@contextlib.asynccontextmanager
async def relayed_kernel(lang: BenchLanguage, workdir: Path) -> AsyncIterator[AsyncKernelClient]:
    """A kernel of ``lang`` (one that only speaks TCP) under a kernelpad keeper in a network
    namespace of its own, as kernelpad starts it but without the sandbox, and a ready client
    that reaches it as kernelpad does: over Unix sockets to the keeper, whose relay carries
    them to the kernel's TCP ports. Against :func:`jupyter_kernel`'s client, which connects to
    the kernel's ports itself, it gives the relay's share of a run."""
    folder = workdir / "relayed"
    folder.mkdir()
    info: KernelConnectionInfo = {
        "shell_port": free_port(),
        "iopub_port": free_port(),
        "stdin_port": free_port(),
        "control_port": free_port(),
        "hb_port": free_port(),
        "transport": "ipc",
        "ip": str(folder / "s"),
        "key": os.urandom(16).hex(),
        "signature_scheme": "hmac-sha256",
    }
    connection = folder / "kernel.json"
    connection.write_text(json.dumps(info))
    spec = KernelSpecManager().get_kernel_spec(lang.kernel_name)
    # The kernelspec's fields, filled in as jupyter_client fills them.
    fields = {"{connection_file}": str(connection), "{resource_dir}": spec.resource_dir}
    kernel = []
    for arg in spec.argv:
        for name, value in fields.items():
            arg = arg.replace(name, value)
        kernel.append(arg)
    env = {**kernel_env(lang, workdir), **spec.env}
    keeper = keeper_command.command(lease_path(folder), folder, 30, [], None, relay=connection)
    with open(workdir / "relayed.log", "wb") as log:
        proc = subprocess.Popen(
            [*keeper, *kernel], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip

    async def launched() -> bool:
        return proc.poll() is None

    kc = AsyncKernelClient()
    # Held as a server holds it.
    lease = await Lease.take(lease_path(folder), KERNEL_START_TIMEOUT, launched)
    try:
        if lease is None:
            raise BenchError("the relayed kernel did not start:\n" + log_tail(
                workdir / "relayed.log"))  # fmt: skip
        deadline = time.monotonic() + KERNEL_START_TIMEOUT
        kc.load_connection_info(info)
        kc.start_channels()
        while True:  # no heartbeat to ask without a manager: kernel_info until it answers
            kc.kernel_info()
            with contextlib.suppress(queue.Empty):
                await kc.get_shell_msg(timeout=1)
                break
            if time.monotonic() > deadline:
                raise BenchError("the relayed kernel never answered:\n" + log_tail(
                    workdir / "relayed.log"))  # fmt: skip
        with contextlib.suppress(queue.Empty):
            while True:  # its start-up's status messages
                await kc.get_iopub_msg(timeout=0.5)
        yield kc
    finally:
        kc.stop_channels()
        if lease is not None:
            lease.release()  # nobody keeps it: the keeper stops the kernel and removes its files
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def jupyter_cold_start(lang: BenchLanguage, workdir: Path, repeats: int) -> Stats:
    times: list[float] = []
    for i in range(repeats):
        async with jupyter_kernel(lang, workdir, f"c{i}", started=times):
            pass
    return Stats.of(times)


def subprocess_trivial(runs: int, warmup: int) -> Stats:
    times: list[float] = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", "print(1+1)"], capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0 or done.stdout.strip() != "2":
            raise BenchError(f"subprocess run failed: {done.returncode} {done.stderr!r}")
        if i >= warmup:
            times.append(elapsed)
    return Stats.of(times)


# Through kernelpad


# Trivial runs, every way at once


@dataclass
class Series:
    """One way of running the trivial code on a warm kernel: ``run(counted)`` runs it once and
    returns the seconds it took (``counted``: a timed run, whose result the series counts)."""

    name: str
    run: Callable[[bool], Awaitable[float]]
    times: list[float] = field(default_factory=list)


async def interleaved(series: list[Series], runs: int, warmup: int) -> None:
    """``warmup`` untimed runs of each series, then ``runs`` timed ones of each in blocks of
    ``BLOCK``, the series taking turns (their order turning round by one each time), so that
    every series meets the machine in the same states. Measured one after the other, the
    series of one language differed by more than kernelpad's overhead as this machine's speed
    drifted: three runs of the same C++ code gave kernelpad / jupyter_client 1.03x, 1.21x and
    1.72x, and jupyter_client's own trivial Python run 4.0 to 11.1 ms in different hours."""
    for one in series:
        for _ in range(warmup):
            await one.run(False)
    for first in range(math.ceil(runs / BLOCK)):
        block = min(BLOCK, runs - first * BLOCK)
        turn = first % len(series)
        for one in series[turn:] + series[:turn]:
            for _ in range(block):
                one.times.append(await one.run(True))


class DirectRuns:
    """Trivial runs through jupyter_client on one warm kernel, plain and (for a language with
    a done probe) settled as kernelpad settles them, with what their results showed."""

    def __init__(self, kc: AsyncKernelClient, lang: BenchLanguage) -> None:
        self.kc = kc
        self.lang = lang
        #: Plain runs whose result had not come by the idle status (it was lost to the caller).
        self.plain_result_missing = Counts()
        #: Settled runs that caught messages after the idle status; those still without a result.
        self.settled_late = Counts()
        self.settled_result_missing = Counts()
        #: Counted settled runs' time by the kernel's own clock: from its busy status to its
        #: idle one, by the dates on them (``load_floor.py`` sets it beside kernelpad's).
        self.kernel_times: list[float] = []

    async def _run(self, probe: str) -> tuple[float, bool, int, bool, float | None]:
        types: list[str] = []
        dates: dict[str, Any] = {}  # the first busy status's date, the last idle one's

        def hook(msg: dict[str, Any]) -> None:
            types.append(msg["header"]["msg_type"])
            if msg["header"]["msg_type"] == "status":
                state = msg["content"].get("execution_state")
                if state == "idle" or (state == "busy" and "busy" not in dates):
                    dates[state] = msg["header"].get("date")

        start = time.perf_counter()
        reply = await self.kc.execute_interactive(self.lang.code, output_hook=hook)
        late, late_result = 0, False
        if probe:
            late, late_result = await drain_late(
                self.kc, reply["parent_header"]["msg_id"], probe, CODE_EXECUTION_TIMEOUT
            )
        elapsed = time.perf_counter() - start
        if reply["content"]["status"] != "ok":
            raise BenchError(
                f"jupyter_client run of {self.lang.code!r} ({self.lang.id}) failed: {reply}"
            )
        at_idle = "execute_result" in types
        kernel_time = _between(dates.get("busy"), dates.get("idle"))
        return elapsed, at_idle, late, at_idle or late_result, kernel_time

    async def plain(self, counted: bool) -> float:
        elapsed, at_idle, _, _, _ = await self._run("")
        if counted:
            self.plain_result_missing.add(not at_idle)
        return elapsed

    async def settled(self, counted: bool) -> float:
        elapsed, _, late, result, kernel_time = await self._run(self.lang.done_probe)
        if counted:
            self.settled_late.add(late > 0)
            self.settled_result_missing.add(not result)
            if kernel_time is not None:
                self.kernel_times.append(kernel_time)
        return elapsed


def _between(busy: object, idle: object) -> float | None:
    """Seconds between two dates jupyter_client read off a kernel's messages, if both are."""
    if not isinstance(busy, datetime.datetime) or not isinstance(idle, datetime.datetime):
        return None
    try:
        elapsed = (idle - busy).total_seconds()
    except TypeError:  # one with a zone and one without
        return None
    return elapsed if elapsed >= 0 else None


class KernelpadRuns:
    """Trivial runs of one kernelpad session over the API's keep-alive HTTP connection, with
    the kernel time kernelpad reports for them and how many came back without their result.
    (The blocking HTTP call holds the event loop for the run: nothing else runs meanwhile.)"""

    def __init__(self, api: Api, lang: BenchLanguage) -> None:
        self.api = api
        self.lang = lang
        self.session_id, self.token = api.create_session(lang.id)
        api.execute(self.session_id, lang.code)  # the session's kernel is now in use: warm
        self.kernel_times: list[float] = []
        self.result_missing = Counts()

    async def run(self, counted: bool) -> float:
        start = time.perf_counter()
        data = self.api.execute(self.session_id, self.lang.code)
        elapsed = time.perf_counter() - start
        if counted:
            self.kernel_times.append(data["execution_time"] / 1000)
            self.result_missing.add(not has_result(data))
        return elapsed

    def end(self) -> None:
        self.api.end_session(self.session_id, self.token)


class SocketRuns:
    """Trivial runs over the JSON socket, as the pad sends them: in the notebook's first cell
    (its outputs written into the cell, and told once stored), and as code of no cell; from
    ``execute`` sent to ``execution_finished`` received. Back to back like the others (the
    server's message rate is lifted for it, WS_MESSAGES_PER_SECOND)."""

    def __init__(self, api: Api, lang: BenchLanguage) -> None:
        self.api = api
        self.lang = lang
        self.session_id, self.token = api.create_session(lang.id)
        status, notebook = api.call(
            "GET", f"/api/v1/sessions/{self.session_id}/notebook.ipynb", token=self.token
        )
        if status != 200:
            raise BenchError(f"reading the notebook of {self.session_id} answered {status}")
        self.cell_id = notebook["cells"][0]["id"]
        self.socket: SessionSocket | None = None

    async def join(self) -> None:
        self.socket = await SessionSocket.join(self.api.port, self.session_id, self.token)

    async def _timed(self, request: dict[str, Any]) -> float:
        assert self.socket is not None
        start = time.perf_counter()
        await self.socket.run(request)
        return time.perf_counter() - start

    async def cell(self, _counted: bool) -> float:
        return await self._timed({"cell_id": self.cell_id, "code": self.lang.code})

    async def code(self, _counted: bool) -> float:
        return await self._timed({"code": self.lang.code})

    def end(self) -> None:
        if self.socket is not None:
            self.socket.close()
        self.api.end_session(self.session_id, self.token)


@dataclass
class TrivialRuns:
    """Every series' times, and what the runs' results showed."""

    stats: dict[str, Stats]
    kernel_time: Stats
    late: dict[str, Counts]


@contextlib.asynccontextmanager
async def floor_runs(lang: BenchLanguage, workdir: Path, socket: bool) -> AsyncIterator[FloorRuns]:
    """Runs through the server floor (``server_floor.py``), on a kernel of its own started as
    :func:`jupyter_kernel` starts one, whose only client the floor is; ``socket``: its
    WebSocket joined too."""
    async with jupyter_kernel(lang, workdir, "floor") as kc:
        kc.stop_channels()  # (or the kernel would send each message to two clients)
        log = workdir / "floor-server.log"
        async with floor_server(workdir / "floor.json", lang.done_probe, log) as port:
            runs = FloorRuns(port, lang.code)
            try:
                if socket:
                    await runs.join()
                yield runs
            finally:
                runs.close()


async def trivial_runs(
    api: Api, lang: BenchLanguage, workdir: Path, runs: int, warmup: int
) -> TrivialRuns:
    """The trivial code run every way, interleaved (:func:`interleaved`): through
    jupyter_client on a kernel started here, plain and settled; through kernelpad over HTTP;
    through the server floor over HTTP; and, for Python, over the JSON socket (a cell's run
    and code of no cell) and the floor's WebSocket."""
    async with jupyter_kernel(lang, workdir, "warm") as kc:
        direct = DirectRuns(kc, lang)
        series = [Series("jupyter_client", direct.plain)]
        if lang.done_probe:
            series.append(Series("jupyter_client_settled", direct.settled))
        http_runs = KernelpadRuns(api, lang)
        series.append(Series("kernelpad_http", http_runs.run))
        socket_runs = SocketRuns(api, lang) if lang.id == "python" else None
        kernels = contextlib.AsyncExitStack()
        try:
            if lang.transport == "tcp" and relay_problem() is None:
                relayed = DirectRuns(
                    await kernels.enter_async_context(relayed_kernel(lang, workdir)), lang
                )
                name = (
                    "jupyter_client_settled_relayed"
                    if lang.done_probe
                    else "jupyter_client_relayed"
                )
                series.append(Series(name, relayed.settled if lang.done_probe else relayed.plain))
            floor = await kernels.enter_async_context(
                floor_runs(lang, workdir, socket=socket_runs is not None)
            )
            series.append(Series("server_floor_http", floor.http))
            if socket_runs is not None:
                await socket_runs.join()
                series += [
                    Series("kernelpad_socket_cell", socket_runs.cell),
                    Series("kernelpad_socket_code", socket_runs.code),
                    Series("server_floor_socket", floor.ws),
                ]
            # Taking pooled kernels made the pool start another: let it finish, or it competes.
            wait_for_pool(api)
            await interleaved(series, runs, warmup)
        finally:
            http_runs.end()
            if socket_runs is not None:
                socket_runs.end()
            await kernels.aclose()
    late = {
        "jupyter_client_result_missing_at_idle": direct.plain_result_missing,
        "kernelpad_result_missing": http_runs.result_missing,
        "server_floor_result_missing": Counts(floor.results.count(False), len(floor.results)),
    }
    if lang.done_probe:
        late["jupyter_client_settled_caught_late_messages"] = direct.settled_late
        late["jupyter_client_settled_result_missing"] = direct.settled_result_missing
    return TrivialRuns(
        {one.name: Stats.of(one.times) for one in series}, Stats.of(http_runs.kernel_times), late
    )


def first_result(api: Api, lang: BenchLanguage, repeats: int, pooled: bool) -> tuple[Stats, Counts]:
    """Create a session and run the trivial code in it, ``repeats`` times; each session is then
    ended. Also how many first runs came back without their result."""
    times: list[float] = []
    missing = Counts()
    for _ in range(repeats):
        if pooled:
            wait_for_pool(api)
        start = time.perf_counter()
        session_id, token = api.create_session(lang.id)
        data = api.execute(session_id, lang.code)
        times.append(time.perf_counter() - start)
        missing.add(not has_result(data))
        api.end_session(session_id, token)
    return Stats.of(times), missing


# One language


# Languages whose runs take tens of milliseconds (a JVM snippet, a clang compile): fewer runs.
SLOW_LANGUAGES = ("java", "cpp")


def counts_for(lang: BenchLanguage, args: argparse.Namespace) -> tuple[int, int, int]:
    """Timed trivial runs, warm-up runs and cold-start / first-result repetitions."""
    if lang.id in SLOW_LANGUAGES:
        return args.java_runs, args.java_warmup, args.java_repeats
    return args.runs, args.warmup, args.repeats


def measure_language(lang: BenchLanguage, args: argparse.Namespace) -> dict[str, Any]:
    runs, warmup, repeats = counts_for(lang, args)
    trivial: dict[str, Stats] = {}
    late: dict[str, Counts] = {}
    # Kernels' Unix socket paths must stay short: a folder directly under the temp dir.
    with tempfile.TemporaryDirectory(prefix="kpb-") as tmp:
        workdir = Path(tmp)
        print(f"{lang.id}: jupyter_client cold starts ...", flush=True)
        cold_start = asyncio.run(jupyter_cold_start(lang, workdir, repeats))
        if lang.id == "python":
            print(f"{lang.id}: new process per run ...", flush=True)
            trivial["subprocess"] = subprocess_trivial(args.subprocess_runs, warmup=3)
        print(f"{lang.id}: trivial runs, kernelpad and jupyter_client taking turns ...", flush=True)
        with kernelpad_server(lang, pool_size=1) as api:
            wait_for_pool(api)
            runs_of = asyncio.run(trivial_runs(api, lang, workdir, runs, warmup))
            trivial.update(runs_of.stats)
            trivial["kernelpad_kernel_time"] = runs_of.kernel_time
            late.update(runs_of.late)
            print(f"{lang.id}: kernelpad with a kernel pool ...", flush=True)
            pooled, pooled_missing = first_result(api, lang, repeats, pooled=True)
    print(f"{lang.id}: kernelpad without a kernel pool ...", flush=True)
    with kernelpad_server(lang, pool_size=0) as api:
        no_pool, no_pool_missing = first_result(api, lang, repeats, pooled=False)
    late["kernelpad_first_result_missing"] = Counts(
        pooled_missing.seen + no_pool_missing.seen, pooled_missing.of + no_pool_missing.of
    )

    def ratio(a: Stats, b: Stats) -> float:
        return round(a.median_ms / b.median_ms, 4)

    floor = "jupyter_client_settled" if "jupyter_client_settled" in trivial else "jupyter_client"
    ratios = {
        "trivial_kernelpad_over_jupyter_client": ratio(trivial["kernelpad_http"], trivial[floor]),
        "pooled_first_result_over_cold_kernel_start": ratio(pooled, cold_start),
        "pooled_over_no_pool_first_result": ratio(pooled, no_pool),
    }
    if floor != "jupyter_client":
        ratios["trivial_kernelpad_over_jupyter_client_plain"] = ratio(
            trivial["kernelpad_http"], trivial["jupyter_client"]
        )
    # Informational, each where both of its series were measured: (name, over, under).
    for name, over, under in (
        ("socket_cell_over_jupyter_client", "kernelpad_socket_cell", floor),
        ("socket_code_over_jupyter_client", "kernelpad_socket_code", floor),
        ("server_floor_http_over_jupyter_client", "server_floor_http", floor),
        ("kernelpad_http_over_server_floor_http", "kernelpad_http", "server_floor_http"),
        ("server_floor_socket_over_jupyter_client", "server_floor_socket", floor),
        ("socket_code_over_server_floor_socket", "kernelpad_socket_code", "server_floor_socket"),
        ("relayed_over_direct", floor + "_relayed", floor),
        ("subprocess_over_kernelpad", "subprocess", "kernelpad_http"),
    ):
        if over in trivial and under in trivial:
            ratios[name] = ratio(trivial[over], trivial[under])
    return {
        "kernel_name": lang.kernel_name,
        "transport": lang.transport,
        "trivial_code": lang.code,
        "done_probe": bool(lang.done_probe),
        "cold_start": {"jupyter_client": asdict(cold_start)},
        "first_result": {"kernelpad_pooled": asdict(pooled), "kernelpad_no_pool": asdict(no_pool)},
        "trivial_run": {name: asdict(s) for name, s in trivial.items()},
        "trivial_target_compares_with": floor,
        "late_output": {name: asdict(c) for name, c in late.items()},
        "ratios": ratios,
        "verdicts": {
            "trivial": verdict(ratios["trivial_kernelpad_over_jupyter_client"], TRIVIAL_TARGET),
            "pool": verdict(ratios["pooled_first_result_over_cold_kernel_start"], POOL_TARGET),
        },
    }


# Report


LABEL = 74  # width of the table's labels
RATIO = 58  # width of the ratios' labels


def row(label: str, s: dict[str, Any], decimals: int) -> None:
    print(
        f"{label:{LABEL}} {s['runs']:>5} {s['median_ms']:>10.{decimals}f}"
        f" {s['p95_ms']:>9.{decimals}f}"
    )


def counts(c: dict[str, int]) -> str:
    return f"{c['seen']}/{c['of']}"


#: The relayed series' letter: after b' where there is a settled series, else after b.
RELAYED_B = {True: "b''", False: "b'"}


def print_language(lang_id: str, r: dict[str, Any]) -> None:
    trivial, first, late = r["trivial_run"], r["first_result"], r["late_output"]
    ratios = r["ratios"]
    settled = "jupyter_client_settled" in trivial
    head = f"{lang_id} (kernelspec {r['kernel_name']} over {r['transport']}"
    head += f"; code {r['trivial_code']!r})"
    print(f"\n{head:{LABEL}} {'runs':>5} {'median ms':>10} {'p95 ms':>9}")
    row("  1. cold kernel start, jupyter_client (start_kernel + wait_for_ready)",
        r["cold_start"]["jupyter_client"], 1)  # fmt: skip
    print("  2. new session to its first result, kernelpad")
    row("     a. pooled kernel ready", first["kernelpad_pooled"], 1)
    row("     b. no pool (pool size 0): the session boots a kernel", first["kernelpad_no_pool"], 1)
    print("  3. trivial run on a warm kernel")
    row("     a. kernelpad POST .../execute (keep-alive HTTP)", trivial["kernelpad_http"], 2)
    row("        of which kernel time reported by kernelpad", trivial["kernelpad_kernel_time"], 2)
    if settled:
        row("     b. jupyter_client execute_interactive, plain (can lose late output)",
            trivial["jupyter_client"], 2)  # fmt: skip
        row("     b'. the same + the done probe, as kernelpad (settled)",
            trivial["jupyter_client_settled"], 2)  # fmt: skip
    else:
        row("     b. jupyter_client execute_interactive", trivial["jupyter_client"], 2)
    relayed = "jupyter_client_settled_relayed" if settled else "jupyter_client_relayed"
    if relayed in trivial:
        row(f"     {RELAYED_B[settled]}. the same through a keeper's relay (kernelpad's way in)",
            trivial[relayed], 2)  # fmt: skip
    if "subprocess" in trivial:
        row("     c. new process per run (subprocess.run)", trivial["subprocess"], 2)
    if "kernelpad_socket_cell" in trivial:
        row("     d. kernelpad JSON socket, a cell's run (outputs stored first)",
            trivial["kernelpad_socket_cell"], 2)  # fmt: skip
        row("     e. kernelpad JSON socket, code of no cell", trivial["kernelpad_socket_code"], 2)
    row("     f. the server floor, POST /run (keep-alive HTTP; server_floor.py)",
        trivial["server_floor_http"], 2)  # fmt: skip
    if "server_floor_socket" in trivial:
        row("     g. the server floor's WebSocket", trivial["server_floor_socket"], 2)
    print("  results (execute_result of the trivial code) and late output, runs out of runs:")
    print(
        "     jupyter_client plain: result not there at idle"
        f" {counts(late['jupyter_client_result_missing_at_idle'])}"
    )
    if settled:
        print(
            "     jupyter_client settled: output came after idle"
            f" {counts(late['jupyter_client_settled_caught_late_messages'])},"
            f" result still missing {counts(late['jupyter_client_settled_result_missing'])}"
        )
    print(
        "     kernelpad: result missing in trivial runs"
        f" {counts(late['kernelpad_result_missing'])},"
        f" in first runs {counts(late['kernelpad_first_result_missing'])}"
    )
    print(f"     server floor: result missing {counts(late['server_floor_result_missing'])}")
    print("  ratios of medians")
    b = "3a / 3b'" if settled else "3a / 3b"
    against = " settled" if settled else ""
    label = f"{b}, kernelpad / jupyter_client{against}, trivial run:"
    t = ratios["trivial_kernelpad_over_jupyter_client"]
    print(
        f"     {label:{RATIO}} {t:7.2f}x  target <= {TRIVIAL_TARGET}x: {verdict(t, TRIVIAL_TARGET)}"
    )
    if settled:
        plain = ratios["trivial_kernelpad_over_jupyter_client_plain"]
        label = "3a / 3b, kernelpad / jupyter_client plain, trivial run:"
        print(
            f"     {label:{RATIO}} {plain:7.2f}x"
            "  informational (plain does not wait for late output)"
        )
    p = ratios["pooled_first_result_over_cold_kernel_start"]
    label = "2a / 1, pooled first result / cold kernel start:"
    print(f"     {label:{RATIO}} {p:8.3f}  target <= {POOL_TARGET}: {verdict(p, POOL_TARGET)}")
    k = ratios["pooled_over_no_pool_first_result"]
    label = "2a / 2b, pooled / no-pool first result in kernelpad:"
    print(f"     {label:{RATIO}} {k:8.3f}  informational")
    for key, label in (
        ("socket_cell_over_jupyter_client", "3d / 3b, a cell's run over the JSON socket:"),
        ("socket_code_over_jupyter_client", "3e / 3b, code of no cell over the JSON socket:"),
    ):
        if key in ratios:
            print(f"     {label:{RATIO}} {ratios[key]:7.2f}x  informational")
    floor_b = "3b'" if settled else "3b"
    for key, label in (
        ("server_floor_http_over_jupyter_client", f"3f / {floor_b}, any server's HTTP hop:"),
        ("kernelpad_http_over_server_floor_http", "3a / 3f, kernelpad / the server floor, HTTP:"),
        ("server_floor_socket_over_jupyter_client", f"3g / {floor_b}, any server's socket hop:"),
        ("socket_code_over_server_floor_socket", "3e / 3g, kernelpad / the floor, socket:"),
    ):
        if key in ratios:
            print(f"     {label:{RATIO}} {ratios[key]:7.2f}x  informational")
    if "relayed_over_direct" in ratios:
        label = f"3{RELAYED_B[settled]} / {floor_b}, relayed / straight to the kernel:"
        print(f"     {label:{RATIO}} {ratios['relayed_over_direct']:7.2f}x  informational")
    if "subprocess_over_kernelpad" in ratios:
        s = ratios["subprocess_over_kernelpad"]
        label = "3c / 3a, new process per run / kernelpad:"
        print(f"     {label:{RATIO}} {s:7.1f}x  informational")


def print_report(results: dict[str, Any]) -> None:
    info = results["machine"]
    print(
        f"\nkernelpad execute latency  ({info['timestamp']}, {info['cpu_count']} CPUs,"
        f" load {info['load_average_1m_at_end']} at the end, Python {info['python']})"
    )
    for lang_id, r in results["languages"].items():
        print_language(lang_id, r)
    print(
        f"\nSummary{'':6} trivial run, kernelpad / jupyter_client{'':5}"
        " pooled first result / cold start"
    )
    print(f"{'':13} (target <= {TRIVIAL_TARGET}x){'':25} (target <= {POOL_TARGET})")
    for lang_id, r in results["languages"].items():
        ratios, verdicts = r["ratios"], r["verdicts"]
        t = ratios["trivial_kernelpad_over_jupyter_client"]
        p = ratios["pooled_first_result_over_cold_kernel_start"]
        floor = "settled" if r["trivial_target_compares_with"] == "jupyter_client_settled" else ""
        print(
            f"  {lang_id:11} {t:6.2f}x {verdicts['trivial']:14} {floor:18}"
            f" {p:6.3f} {verdicts['pool']}"
        )
    if SERVER_PROBLEMS:
        print(f"\nkernelpad logged {len(SERVER_PROBLEMS)} warning(s) or error(s):")
        for line in SERVER_PROBLEMS[:20]:
            print(f"  {line}")


def write_results(results: dict[str, Any]) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nFigures written to {RESULTS_FILE}")


# Main


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    languages = {lang_id: measure_language(LANGUAGES[lang_id], args) for lang_id in args.languages}
    return {
        "machine": machine_info(jupyter_client=version("jupyter_client")),
        "settings": {**vars(args), "duration_s": round(time.monotonic() - started, 1)},
        "languages": languages,
        "targets": {
            "trivial_kernelpad_over_jupyter_client": TRIVIAL_TARGET,
            "pooled_first_result_over_cold_kernel_start": POOL_TARGET,
        },
        "kernelpad_log_problems": SERVER_PROBLEMS,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--languages",
        nargs="+",
        default=list(LANGUAGES),
        metavar="LANG",
        help=f"languages to measure, by kernelpad id, space or comma separated"
        f" (default: {' '.join(LANGUAGES)})",
    )
    parser.add_argument("--runs", type=int, default=200, help="timed trivial runs (default 200)")
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed trivial runs first (default 20)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=10,
        help="cold starts and session-to-first-result repetitions (default 10)",
    )
    parser.add_argument(
        "--java-runs", type=int, default=100, help="--runs for Java and C++ (default 100)"
    )
    parser.add_argument(
        "--java-warmup", type=int, default=10, help="--warmup for Java and C++ (default 10)"
    )
    parser.add_argument(
        "--java-repeats", type=int, default=5, help="--repeats for Java and C++ (default 5)"
    )
    parser.add_argument(
        "--subprocess-runs", type=int, default=30, help="timed new-process runs (default 30)"
    )
    args = parser.parse_args()
    chosen = [name.strip() for item in args.languages for name in item.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in LANGUAGES]
    if unknown or not chosen:
        parser.error(f"--languages: choose among {', '.join(LANGUAGES)}")
    args.languages = list(dict.fromkeys(chosen))
    for name in ("runs", "repeats", "java_runs", "java_repeats", "subprocess_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("warmup", "java_warmup"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    return args


def main() -> None:
    args = parse_args()
    try:
        results = measure(args)
    except BenchError as exc:
        sys.exit(f"benchmark aborted: {exc}")
    print_report(results)
    write_results(results)


if __name__ == "__main__":
    main()
