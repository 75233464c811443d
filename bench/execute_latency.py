"""How long kernelpad takes to run code, next to what a bare Jupyter kernel takes.

kernelpad runs interview code on real Jupyter kernels behind an HTTP API. This benchmark tells
how much its layers (HTTP, sessions, the SQLite history, its message loop) add to a kernel's own
speed, and whether the kernel pool hides a kernel's boot time from a session's first run:

1. Trivial run (``1+1``) latency, median and p95, on a warm kernel:
   a. kernelpad: ``POST /api/v1/sessions/{id}/execute`` over one keep-alive HTTP connection;
   b. jupyter_client directly: ``execute_interactive`` on a kernel started here (the floor);
   c. a new Python process per run, the original design's approach.
2. Time from creating a session to its first result, median:
   a. kernelpad with its kernel pool (one kernel ready before each repetition);
   b. kernelpad without a pool (``--kernel-pool-size '{"python": 0}'``): a kernel boots per session;
   c. a plain cold kernel start via jupyter_client (start + wait_for_ready), for reference.
3. Ratios against the targets: kernelpad / jupyter_client for a trivial run (at most 1.25x) and
   pooled first result / cold kernel start (at most 0.1).

The figures are printed and written to ``bench/results/execute_latency.json``. Missing a target is
reported in words only: this is a measurement, not a test, and it exits 0 either way.

Run it with ``make bench`` or ``.venv/bin/python bench/execute_latency.py [--runs N]``.
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
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jupyter_client
import psutil
import tornado
from jupyter_client.manager import AsyncKernelManager

import kernelpad

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "execute_latency.json"
TRIVIAL_CODE = "1+1"
TRIVIAL_TARGET = 1.25  # kernelpad / jupyter_client, trivial run on a warm kernel
POOL_TARGET = 0.1  # pooled first result / cold kernel start
SERVER_START_TIMEOUT = 60.0
POOL_READY_TIMEOUT = 60.0


class BenchError(Exception):
    """Something went wrong that makes the figures meaningless; the message says what."""


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


# kernelpad servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """A kernelpad API client on one keep-alive HTTP connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

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

    def create_session(self) -> tuple[str, str]:
        """A new session's id and host token."""
        status, data = self.call("POST", "/api/v1/sessions", {"host_name": "bench"})
        if status != 201:
            raise BenchError(f"creating a session answered {status}: {data}")
        return data["session_id"], data["host_token"]

    def execute(self, session_id: str, code: str) -> dict[str, Any]:
        status, data = self.call("POST", f"/api/v1/sessions/{session_id}/execute", {"code": code})
        if status != 200:
            raise BenchError(f"running {code!r} in session {session_id}: HTTP {status}, {data}")
        if data.get("status") != "ok":
            raise BenchError(
                f"running {code!r} in session {session_id} ended {data.get('status')!r}"
                f" instead of 'ok'; stderr: {data.get('stderr', '')[-500:]!r}"
            )
        return data

    def end_session(self, session_id: str, token: str) -> None:
        status, data = self.call("DELETE", f"/api/v1/sessions/{session_id}", token=token)
        if status != 200:
            raise BenchError(f"ending session {session_id} answered {status}: {data}")

    def close(self) -> None:
        self.conn.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def kernelpad_server(pool_size: int | None = None) -> Iterator[Api]:
    """A kernelpad server in a subprocess, with its own data dir; stopped with SIGTERM."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="kpbench-data-")
    cmd = [
        sys.executable,
        "-m",
        "kernelpad",
        "--port",
        str(port),
        "--data-dir",
        data_dir,
        "--rate-limit-executions-per-minute",
        "0",
        "--log-level",
        "WARNING",
    ]
    if pool_size is not None:
        cmd += ["--kernel-pool-size", json.dumps({"python": pool_size})]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    api: Api | None = None
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"kernelpad exited with code {proc.returncode} on start")
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
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                print("warning: kernelpad did not stop within 30 s of SIGTERM", file=sys.stderr)
        shutil.rmtree(data_dir, ignore_errors=True)


def wait_for_pool(api: Api) -> None:
    wait_until(lambda: api.health()["kernels_pooled"] >= 1, POOL_READY_TIMEOUT, "a pooled kernel")


# 1. Trivial run on a warm kernel


def kernelpad_trivial(api: Api, runs: int, warmup: int) -> tuple[Stats, Stats]:
    """Round trips of ``1+1`` through the API, and the kernel time kernelpad reports for them."""
    session_id, token = api.create_session()
    api.execute(session_id, TRIVIAL_CODE)  # the session's kernel is now in use, i.e. warm
    for _ in range(warmup):
        api.execute(session_id, TRIVIAL_CODE)
    round_trips: list[float] = []
    kernel_times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        data = api.execute(session_id, TRIVIAL_CODE)
        round_trips.append(time.perf_counter() - start)
        kernel_times.append(data["execution_time"] / 1000)
    api.end_session(session_id, token)
    return Stats.of(round_trips), Stats.of(kernel_times)


@contextlib.asynccontextmanager
async def jupyter_kernel(workdir: Path, name: str) -> Any:
    """A started kernel and a ready client, over ipc sockets under ``workdir``."""
    km = AsyncKernelManager(
        kernel_name="python3",
        transport="ipc",
        ip=str(workdir / name),
        connection_file=str(workdir / f"{name}.json"),
    )
    await km.start_kernel()
    kc = km.client()
    try:
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


async def jupyter_trivial(workdir: Path, runs: int, warmup: int) -> Stats:
    async with jupyter_kernel(workdir, "warm") as kc:

        async def run() -> None:
            reply = await kc.execute_interactive(TRIVIAL_CODE, output_hook=lambda m: None)
            if reply["content"]["status"] != "ok":
                raise BenchError(f"jupyter_client run of {TRIVIAL_CODE!r} failed: {reply}")

        for _ in range(warmup + 1):
            await run()
        times: list[float] = []
        for _ in range(runs):
            start = time.perf_counter()
            await run()
            times.append(time.perf_counter() - start)
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


# 2. Session creation to first result


def first_result(api: Api, repeats: int, pooled: bool) -> Stats:
    """Create a session and run ``1+1`` in it, ``repeats`` times; each session is then ended."""
    times: list[float] = []
    for _ in range(repeats):
        if pooled:
            wait_for_pool(api)
        start = time.perf_counter()
        session_id, token = api.create_session()
        api.execute(session_id, TRIVIAL_CODE)
        times.append(time.perf_counter() - start)
        api.end_session(session_id, token)
    return Stats.of(times)


async def jupyter_cold_start(workdir: Path, repeats: int) -> Stats:
    times: list[float] = []
    for i in range(repeats):
        km = AsyncKernelManager(
            kernel_name="python3",
            transport="ipc",
            ip=str(workdir / f"c{i}"),
            connection_file=str(workdir / f"c{i}.json"),
        )
        start = time.perf_counter()
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            times.append(time.perf_counter() - start)
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
    return Stats.of(times)


# Report


def machine_info() -> dict[str, Any]:
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kernelpad": kernelpad.__version__,
        "jupyter_client": jupyter_client.__version__,
        "tornado": tornado.version,
    }


def verdict(ratio: float, target: float) -> str:
    return "target met" if ratio <= target else "target missed"


def print_report(results: dict[str, Any]) -> None:
    trivial = results["trivial_run"]
    first = results["first_result"]
    ratios = results["ratios"]
    info = results["machine"]
    print(
        f"\nkernelpad execute latency  ({info['timestamp']}, {info['cpu_count']} CPUs,"
        f" Python {info['python']})\n"
    )
    header = f"{'':52} {'runs':>5} {'median ms':>10} {'p95 ms':>9}"
    print("1. Trivial run (1+1), warm kernel")
    print(header)
    rows = [
        ("a. kernelpad HTTP API (keep-alive)", trivial["kernelpad_http"]),
        ("   of which kernel time reported by kernelpad", trivial["kernelpad_kernel_time"]),
        ("b. jupyter_client execute_interactive", trivial["jupyter_client"]),
        ("c. new process per run (subprocess.run)", trivial["subprocess"]),
    ]
    for label, s in rows:
        print(f"{label:52} {s['runs']:>5} {s['median_ms']:>10.2f} {s['p95_ms']:>9.2f}")
    print("\n2. Session creation to first result")
    print(header)
    rows = [
        ("a. kernelpad, pooled kernel", first["kernelpad_pooled"]),
        ("b. kernelpad, cold kernel (pool size 0)", first["kernelpad_cold"]),
        ("c. jupyter_client cold kernel start (reference)", first["jupyter_client_cold_start"]),
    ]
    for label, s in rows:
        print(f"{label:52} {s['runs']:>5} {s['median_ms']:>10.1f} {s['p95_ms']:>9.1f}")
    print("\n3. Ratios (medians)")
    t = ratios["trivial_kernelpad_over_jupyter_client"]
    p = ratios["pooled_first_result_over_cold_kernel_start"]
    k = ratios["pooled_first_result_over_kernelpad_cold_first_result"]
    print(
        f"   kernelpad / jupyter_client, trivial run:          {t:6.2f}x"
        f"  (target <= {TRIVIAL_TARGET}x: {verdict(t, TRIVIAL_TARGET)})"
    )
    print(
        f"   pooled first result / cold kernel start (2a/2c):  {p:6.3f}"
        f"   (target <= {POOL_TARGET}: {verdict(p, POOL_TARGET)})"
    )
    print(f"   pooled / cold first result in kernelpad (2a/2b):  {k:6.3f}   (informational)")
    s = ratios["subprocess_over_kernelpad"]
    print(f"   new process per run / kernelpad, trivial run:     {s:6.1f}x  (informational)")


def write_results(results: dict[str, Any]) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nFigures written to {RESULTS_FILE}")


# Main


def measure(args: argparse.Namespace) -> dict[str, Any]:
    trivial: dict[str, Any] = {}
    first: dict[str, Any] = {}
    # Kernels' Unix socket paths must stay short: a folder directly under the temp dir.
    with tempfile.TemporaryDirectory(prefix="kpb-") as tmp:
        workdir = Path(tmp)
        print("jupyter_client: trivial runs and cold starts ...", flush=True)
        trivial["jupyter_client"] = asyncio.run(jupyter_trivial(workdir, args.runs, args.warmup))
        first["jupyter_client_cold_start"] = asyncio.run(jupyter_cold_start(workdir, args.repeats))
    print("new process per run ...", flush=True)
    trivial["subprocess"] = subprocess_trivial(args.subprocess_runs, warmup=3)
    print("kernelpad with its kernel pool ...", flush=True)
    with kernelpad_server() as api:
        wait_for_pool(api)
        trivial["kernelpad_http"], trivial["kernelpad_kernel_time"] = kernelpad_trivial(
            api, args.runs, args.warmup
        )
        first["kernelpad_pooled"] = first_result(api, args.repeats, pooled=True)
    print("kernelpad without a kernel pool ...", flush=True)
    with kernelpad_server(pool_size=0) as api:
        first["kernelpad_cold"] = first_result(api, args.repeats, pooled=False)

    def ratio(a: Stats, b: Stats) -> float:
        return a.median_ms / b.median_ms

    ratios = {
        "trivial_kernelpad_over_jupyter_client": ratio(
            trivial["kernelpad_http"], trivial["jupyter_client"]
        ),
        "pooled_first_result_over_cold_kernel_start": ratio(
            first["kernelpad_pooled"], first["jupyter_client_cold_start"]
        ),
        "pooled_first_result_over_kernelpad_cold_first_result": ratio(
            first["kernelpad_pooled"], first["kernelpad_cold"]
        ),
        "subprocess_over_kernelpad": ratio(trivial["subprocess"], trivial["kernelpad_http"]),
    }
    return {
        "machine": machine_info(),
        "settings": vars(args),
        "trivial_run": {name: asdict(s) for name, s in trivial.items()},
        "first_result": {name: asdict(s) for name, s in first.items()},
        "ratios": {name: round(value, 4) for name, value in ratios.items()},
        "targets": {
            "trivial_kernelpad_over_jupyter_client": TRIVIAL_TARGET,
            "pooled_first_result_over_cold_kernel_start": POOL_TARGET,
        },
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed trivial runs (default 200)")
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed trivial runs first (default 20)"
    )
    parser.add_argument(
        "--subprocess-runs", type=int, default=30, help="timed new-process runs (default 30)"
    )
    parser.add_argument(
        "--repeats", type=int, default=10, help="session-to-first-result repetitions (default 10)"
    )
    args = parser.parse_args()
    for name in ("runs", "subprocess_runs", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
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
