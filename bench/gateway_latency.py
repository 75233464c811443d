"""Kernels on a Jupyter Kernel Gateway through kernelpad, next to the peers' own kernel sockets.

The median, p90 and p95 of a trivial Python run (``1+1``), one run every ``--gap-ms``:

1. through kernelpad, over REST (``POST .../execute``) and over its JSON socket (``execute`` sent
   to ``execution_finished`` received, code of no cell), with the session's kernel
   a. local (kernelpad's own, sandboxed as it is by default);
   b. on a stock Kernel Gateway on loopback;
   c. on the same gateway with TCP_NODELAY on its kernel WebSockets (``gateway_nodelay.py``);
2. through the gateway's own kernel WebSocket (``/api/kernels/{id}/channels``, Jupyter's
   messages as JSON: an ``execute_request`` on shell, done at its ``execute_reply`` and the idle
   status on iopub), on each gateway, with a plain Tornado client with TCP_NODELAY, and the same
   client also asking for ``TCP_QUICKACK`` before every read (kernelpad's
   ``acknowledge_at_once``): what the client side alone can do;
3. the same through Jupyter Server's own kernel WebSocket, a stock ``jupyter server``.

Then the ratios: kernelpad's JSON socket / the gateway's own socket (both clients), and the
runs on a gateway / the same run on a local kernel (the goal: a stock gateway's <= 1.8x). Each
setup runs alone: kernelpad is stopped before the gateway's own socket is measured. Run it with
``.venv/bin/python bench/gateway_latency.py [--runs 200]``; figures, not pass or fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
from harness import (
    BenchError,
    SessionSocket,
    free_port,
    kernelpad_command,
    log_tail,
    machine_info,
    stop_process,
    timed,
    verdict,
)
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from kernelpad.kernel_gateway.kernel import acknowledge_at_once

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"
RESULTS_FILE = HERE / "results" / "gateway_latency.json"
QUIET_CPU_PERCENT = 25.0  # of the whole machine, over half a second
QUIET_WAIT = 20.0  # seconds at most
REMOTE_TARGET = 1.8  # a stock gateway's run through kernelpad / the same run on a local kernel
CODE = "1+1"

# The setups measured, in order, and what the table calls them.
SETUPS = {
    "local": "local kernel",
    "gateway_stock": "Kernel Gateway, stock",
    "gateway_nodelay": "Kernel Gateway, TCP_NODELAY",
    "jupyter_server": "Jupyter Server, stock",
}
# The ways a run is sent, in order, and what the table calls them.
PATHS = {
    "kernelpad_rest": "kernelpad REST (POST .../execute)",
    "kernelpad_socket": "kernelpad JSON socket (execute)",
    "own_socket": "own kernel socket, Tornado, TCP_NODELAY",
    "own_socket_quickack": "  + TCP_QUICKACK before every read",
}


def stats(seconds: list[float]) -> dict[str, float]:
    """Median and nearest-rank percentiles, in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)

    def rank(q: float) -> float:
        return round(ms[max(0, math.ceil(q * len(ms)) - 1)], 2)

    return {
        "runs": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": rank(0.9),
        "p95_ms": rank(0.95),
        "max_ms": round(ms[-1], 2),
    }


class Client:
    """A keep-alive JSON client of one HTTP server (kernelpad's API, or a peer's with a token)."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.token:
            headers["Authorization"] = f"token {self.token}"
        self.conn.request(method, path, data, headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise BenchError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return json.loads(payload) if payload else None


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException, BenchError):
            if check():
                return
        time.sleep(0.2)
    raise BenchError(f"timed out waiting for {what}")


@contextlib.contextmanager
def process(
    cmd: list[str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            yield proc
        finally:
            stop_process(proc)


@contextlib.contextmanager
def peer(
    workdir: Path, name: str, launcher: list[str], options: Callable[[int], list[str]]
) -> Iterator[int]:
    """A Kernel Gateway or Jupyter Server on loopback with ``TOKEN``, until it answers; its
    port."""
    port = free_port()
    log = workdir / f"{name}.log"
    with process([*launcher, *options(port)], log, cwd=workdir) as proc:

        def answers() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"{name} exited: {log_tail(log)}")
            return Client(port, TOKEN).call("GET", "/api/kernelspecs") is not None

        wait_until(answers, name)
        yield port


def gateway(workdir: Path, nodelay: bool) -> contextlib.AbstractContextManager[int]:
    launcher = (
        [sys.executable, str(HERE / "gateway_nodelay.py")]
        if nodelay
        else [str(Path(sys.executable).with_name("jupyter-kernelgateway"))]
    )

    def options(port: int) -> list[str]:
        return [
            f"--KernelGatewayApp.port={port}",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.auth_token={TOKEN}",
        ]

    name = "gateway-nodelay" if nodelay else "gateway-stock"
    return peer(workdir, name, launcher, options)


def jupyter_server_app(workdir: Path) -> contextlib.AbstractContextManager[int]:
    def options(port: int) -> list[str]:
        return [
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.open_browser=False",
            # This machine runs the benchmarks as root; the server refuses to otherwise.
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={workdir}",
        ]

    launcher = [str(Path(sys.executable).with_name("jupyter-server"))]
    return peer(workdir, "jupyter-server", launcher, options)


# Seconds waited for a quiet machine before each series, in order.
QUIET_WAITS: list[float] = []


def settle() -> None:
    """Wait until the machine is quiet (twice in a row), at most ``QUIET_WAIT`` seconds; the
    seconds waited go to ``QUIET_WAITS``. A kernel kernelpad starts (the session's and the pool's
    next) keeps a CPU busy for a while after it reports ready (when Python kernels still warmed
    jedi at their start, a series measured meanwhile had runs of 20-120 ms on this machine)."""
    start = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - start < QUIET_WAIT:
        quiet = quiet + 1 if psutil.cpu_percent(interval=0.5) < QUIET_CPU_PERCENT else 0
    QUIET_WAITS.append(round(time.monotonic() - start, 1))


# Through kernelpad


@contextlib.contextmanager
def kernelpad(workdir: Path, name: str, *flags: str) -> Iterator[Client]:
    port = free_port()
    cmd = kernelpad_command(
        port,
        str(workdir / f"data-{name}"),
        "--rate-limit-executions-per-minute",
        "0",
        "--kernel-pool-size",
        '{"python": 1}',
        *flags,
    )
    with process(cmd, workdir / f"kernelpad-{name}.log"):
        # A new connection per probe: a refused one is not reusable.
        wait_until(
            lambda: Client(port).call("GET", "/api/v1/health")["status"] == "ok", "kernelpad"
        )
        yield Client(port)


def wait_for_pool(client: Client) -> None:
    # Taking the pooled kernel made the pool start another: let it finish, or it competes.
    wait_until(
        lambda: bool(client.call("GET", "/api/v1/health")["kernels_pooled"] >= 1), "a pooled kernel"
    )


def kernelpad_rest(client: Client, session: str, runs: int, warmup: int, gap: float) -> list[float]:
    path = f"/api/v1/sessions/{session}/execute"
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        body = client.call("POST", path, {"code": CODE})
        elapsed = time.perf_counter() - start
        if body["status"] != "ok":
            raise BenchError(f"a run failed: {body}")
        if i >= warmup:
            times.append(elapsed)
        time.sleep(gap)
    return times


async def kernelpad_socket(
    port: int, session: str, token: str, runs: int, warmup: int, gap: float
) -> list[float]:
    """Runs as code of no cell over the JSON socket, from ``execute`` sent to
    ``execution_finished`` received (as ``execute_latency.py`` times them)."""
    socket = await SessionSocket.join(port, session, token)
    try:
        # The gap also keeps under the socket's rate (100 messages a second).
        return await timed(lambda: socket.run({"code": CODE}), runs, warmup, gap)
    finally:
        socket.close()


def through_kernelpad(client: Client, args: argparse.Namespace) -> dict[str, list[float]]:
    """REST then the JSON socket, on one session's kernel."""
    created = client.call("POST", "/api/v1/sessions", {"host_name": "bench"})
    session, token = created["session_id"], created["host_token"]
    client.call("POST", f"/api/v1/sessions/{session}/execute", {"code": CODE})
    wait_for_pool(client)
    gap = args.gap_ms / 1000
    settle()
    rest = kernelpad_rest(client, session, args.runs, args.warmup, gap)
    settle()
    socket = asyncio.run(kernelpad_socket(client.port, session, token, args.runs, args.warmup, gap))
    client.call("DELETE", f"/api/v1/sessions/{session}", token=token)
    return {"kernelpad_rest": rest, "kernelpad_socket": socket}


# Through a peer's own kernel WebSocket


class KernelSocket:
    """A plain Tornado client of a kernel's channels WebSocket (Jupyter's messages as JSON)."""

    def __init__(self, conn: WebSocketClientConnection, session: Session) -> None:
        self.conn = conn
        self.session = session

    @classmethod
    async def open(cls, port: int, kernel_id: str, quickack: bool) -> KernelSocket:
        session = Session(username="bench")
        url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?session_id={session.session}"
        request = HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"})
        conn = await websocket_connect(request)
        assert conn.stream is not None
        conn.stream.set_nodelay(True)
        if quickack:
            acknowledge_at_once(conn.stream)
        return cls(conn, session)

    async def request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Send a request on shell; its reply once the kernel is idle after it too."""
        msg = self.session.msg(msg_type, content)
        msg_id = msg["header"]["msg_id"]
        await self.conn.write_message(json.dumps({**msg, "channel": "shell"}, default=json_default))
        reply: dict[str, Any] | None = None
        idle = False
        while reply is None or not idle:
            raw = await self.conn.read_message()
            if raw is None:
                raise BenchError("a kernel's channels socket closed")
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["channel"] == "shell":
                reply = message
            elif message["msg_type"] == "status":
                idle = idle or message["content"]["execution_state"] == "idle"
        return reply

    def close(self) -> None:
        self.conn.close()


async def own_socket(
    port: int, kernel_id: str, quickack: bool, runs: int, warmup: int, gap: float
) -> list[float]:
    socket = await KernelSocket.open(port, kernel_id, quickack)
    content = {
        "code": CODE,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": True,
        "stop_on_error": True,
    }

    async def run() -> None:
        reply = await socket.request("execute_request", content)
        if reply["content"]["status"] != "ok":
            raise BenchError(f"a run over a kernel's own socket failed: {reply['content']}")

    try:
        await socket.request("kernel_info_request", {})
        return await timed(run, runs, warmup, gap)
    finally:
        socket.close()


def through_own_socket(port: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """A kernel started on the peer, run through its channels WebSocket by both clients."""
    client = Client(port, TOKEN)
    kernel_id = client.call("POST", "/api/kernels", {"name": "python3"})["id"]
    gap = args.gap_ms / 1000
    times: dict[str, list[float]] = {}
    try:
        for name, quickack in (("own_socket", False), ("own_socket_quickack", True)):
            settle()
            times[name] = asyncio.run(
                own_socket(port, kernel_id, quickack, args.runs, args.warmup, gap)
            )
        return times
    finally:
        client.call("DELETE", f"/api/kernels/{kernel_id}")


# The run


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {}
    print("local kernel: kernelpad ...", flush=True)
    with kernelpad(workdir, "local") as client:
        times["local"] = through_kernelpad(client, args)
    for nodelay in (False, True):
        name = "gateway_nodelay" if nodelay else "gateway_stock"
        with gateway(workdir, nodelay) as port:
            print(f"{SETUPS[name]}: kernelpad ...", flush=True)
            url = f"http://127.0.0.1:{port}"
            flags = ("--gateway-url", url, "--gateway-auth-token", TOKEN)
            with kernelpad(workdir, name, *flags) as client:
                times[name] = through_kernelpad(client, args)
            print(f"{SETUPS[name]}: its own kernel socket ...", flush=True)
            times[name].update(through_own_socket(port, args))
    print(f"{SETUPS['jupyter_server']}: its own kernel socket ...", flush=True)
    with jupyter_server_app(workdir) as port:
        times["jupyter_server"] = through_own_socket(port, args)
    return times


def ratios(figures: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Ratios of medians and of p95s: ``{name: {"median": x, "p95": y}}``."""

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> dict[str, float]:
        fa, fb = figures[a[0]][a[1]], figures[b[0]][b[1]]
        return {
            "median": round(fa["median_ms"] / fb["median_ms"], 2),
            "p95": round(fa["p95_ms"] / fb["p95_ms"], 2),
        }

    out: dict[str, dict[str, float]] = {}
    for gw in ("gateway_stock", "gateway_nodelay"):
        out[f"{gw}_rest_over_local_rest"] = ratio(
            (gw, "kernelpad_rest"), ("local", "kernelpad_rest")
        )
        out[f"{gw}_socket_over_local_socket"] = ratio(
            (gw, "kernelpad_socket"), ("local", "kernelpad_socket")
        )
        out[f"{gw}_socket_over_own_socket"] = ratio((gw, "kernelpad_socket"), (gw, "own_socket"))
        out[f"{gw}_socket_over_own_socket_quickack"] = ratio(
            (gw, "kernelpad_socket"), (gw, "own_socket_quickack")
        )
    out["local_socket_over_jupyter_server_own_socket"] = ratio(
        ("local", "kernelpad_socket"), ("jupyter_server", "own_socket")
    )
    return out


# Report

LABEL = 42
CELL = 23
# The table's columns, as short as they can be.
COLUMNS = {
    "local": "local kernel",
    "gateway_stock": "Kernel Gateway stock",
    "gateway_nodelay": "KG with TCP_NODELAY",
    "jupyter_server": "Jupyter Server stock",
}


def cell(f: dict[str, float] | None) -> str:
    if f is None:
        return f"{'-':>{CELL}}"
    return f"{f['median_ms']:7.2f}{f['p90_ms']:7.2f}{f['p95_ms']:7.2f}".rjust(CELL)


def print_report(results: dict[str, Any]) -> None:
    figures, r = results["figures"], results["ratios"]
    info = results["machine"]
    print(
        f"\nTrivial Python run ({CODE}), {results['runs']} runs per figure, one every"
        f" {results['gap_ms']:g} ms; median, p90, p95 in ms ({info['cpu_count']} CPUs,"
        f" load {info['load_average_1m_at_end']} at the end)"
    )
    print(f"{'':{LABEL}}" + "".join(f"{COLUMNS[s]:>{CELL}}" for s in SETUPS))
    print(f"{'':{LABEL}}" + "".join(f"{'median':>{CELL - 14}}{'p90':>7}{'p95':>7}" for _ in SETUPS))
    for path, label in PATHS.items():
        print(f"{label:{LABEL}}" + "".join(cell(figures[s].get(path)) for s in SETUPS))

    def show(label: str, key: str, goal: bool = False) -> None:
        x = r[key]
        note = f"  goal <= {REMOTE_TARGET}x: {verdict(x['median'], REMOTE_TARGET)}" if goal else ""
        print(f"  {label:{LABEL + 14}} {x['median']:6.2f}x {x['p95']:7.2f}x{note}")

    print(f"\nRatios{'':{LABEL + 11}} median     p95")
    for gw in ("gateway_stock", "gateway_nodelay"):
        print(f"{SETUPS[gw]}")
        stock = gw == "gateway_stock"
        show("kernelpad REST, on the gateway / local", f"{gw}_rest_over_local_rest", stock)
        show(
            "kernelpad JSON socket, on the gateway / local", f"{gw}_socket_over_local_socket", stock
        )
        show("kernelpad JSON socket / gateway's own socket", f"{gw}_socket_over_own_socket")
        show(
            "kernelpad JSON socket / own socket + TCP_QUICKACK",
            f"{gw}_socket_over_own_socket_quickack",
        )
    print("Local kernels")
    show(
        "kernelpad JSON socket / Jupyter Server's own socket",
        "local_socket_over_jupyter_server_own_socket",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=20,
        help="pause after each run, the same for every figure; it keeps the JSON socket under"
        " its rate of 100 messages a second (default 20)",
    )
    args = parser.parse_args()
    # Kernels' Unix socket paths must stay short: a folder directly under the temp dir.
    with tempfile.TemporaryDirectory(prefix="kpgw-") as tmp:
        try:
            times = measure(args, Path(tmp))
        except BenchError as exc:
            sys.exit(f"benchmark aborted: {exc}")
    figures = {
        setup: {path: stats(series) for path, series in by_path.items()}
        for setup, by_path in times.items()
    }
    results = {
        "machine": machine_info(
            jupyter_client=version("jupyter_client"),
            jupyter_server=version("jupyter_server"),
            kernel_gateway=version("jupyter_kernel_gateway"),
        ),
        "runs": args.runs,
        "warmup": args.warmup,
        "gap_ms": args.gap_ms,
        "code": CODE,
        "figures": figures,
        "ratios": ratios(figures),
        "quiet_waits_s": QUIET_WAITS,
        "goal": {
            "gateway_stock_rest_over_local_rest": REMOTE_TARGET,
            "gateway_stock_socket_over_local_socket": REMOTE_TARGET,
        },
    }
    print_report(results)
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nFigures written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
