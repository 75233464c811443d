"""What the benchmarks here share: their error, a free port, the tail of a server's log, a
description of the machine the figures come from, and the verdict against a target."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, get_args

import psutil
import tornado
from tornado.websocket import WebSocketClientConnection, websocket_connect

import kernelpad
from kernelpad.cli import loop_factory
from kernelpad.config import Settings


class BenchError(Exception):
    """Something went wrong that makes the figures meaningless; the message says what."""


T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kernelpad_command(port: int, data_dir: str, *flags: str) -> list[str]:
    """``python -m kernelpad`` on ``port`` with its own data dir, logging warnings only, and
    ``flags`` (the benchmark's own settings)."""
    base = [sys.executable, "-m", "kernelpad", "--port", str(port), "--data-dir", data_dir]
    return [*base, "--log-level", "WARNING", *flags]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> bool:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; whether it
    stopped by itself (a server that needs SIGKILL is a problem worth reporting)."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


def run_on_kernelpads_loop(main: Coroutine[Any, Any, T], name: str | None = None) -> T:
    """Run ``main`` on the event loop kernelpad serves on by default (or the one ``name``d):
    a floor server's, so that a floor and kernelpad differ in what they do, not in their loop;
    a room driven in process (``edit_cost.py``), so that its CPU is what the server's would
    be; a load generator's, so that its own CPU, which a deployment's clients do not take
    from the server's machine, takes as little as it can from the kernels and the server."""
    factory = loop_factory() if name is None else loop_factory(name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def add_client_loop(parser: argparse.ArgumentParser) -> None:
    """``--client-loop``: the event loop a load generator runs its clients on (for
    :func:`run_on_kernelpads_loop`), one of those kernelpad's ``EVENT_LOOP`` setting takes,
    its default by default."""
    setting = Settings.model_fields["event_loop"]
    parser.add_argument(
        "--client-loop",
        choices=get_args(setting.annotation),
        default=setting.default,
        help="the load generator's own event loop (its clients' CPU is the machine's too)",
    )


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def python_loop_ms(repeats: int = 5) -> float:
    """How long this machine takes for a fixed piece of pure Python (a million additions), the
    best of ``repeats``: the same machine's speed moves from hour to hour (a load run's server
    took 31% of a core one hour and 45% the next for the same work), so compare this between
    two runs before comparing their figures. It is rough: on this idle machine it moved from
    29 to 42 ms between calls a second apart."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def machine_info(**versions: str) -> dict[str, Any]:
    """The machine and the versions measured (``versions``: libraries of the benchmark's own);
    the load average at the end says how busy the shared machine was, ``python_loop_ms`` how
    fast it was then."""
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "python_loop_ms": python_loop_ms(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kernelpad": kernelpad.__version__,
        "tornado": tornado.version,
        **versions,
    }


def verdict(value: float, target: float) -> str:
    return "target met" if value <= target else "target missed"


# JupyterLab's own server, the peer some benchmarks measure kernelpad against. It pins versions
# of its own (pycrdt, jupyter_ydoc, jupyter_server), so it lives in a virtualenv apart from
# kernelpad's: bench/.peers-venv, made by pip on first use and remade when the pins change.
PEERS_VENV = Path(__file__).resolve().parent / ".peers-venv"
PEERS_REQUIREMENTS = ("jupyter-collaboration==5.0.4", "jupyter-server>=2.21,<3")
PEERS_TIMEOUT = 900  # seconds for pip: a first install downloads some 60 packages


def peers_python(create: bool = True) -> Path:
    """The Python of the peers' virtualenv, with ``PEERS_REQUIREMENTS`` installed; made if it
    is missing or was made with other pins and ``create``. Raises ``BenchError`` saying why it
    cannot be had (no network for pip, say), so a benchmark can skip the peer and say so."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".installed"
    wanted = "\n".join(PEERS_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not create:
        raise BenchError(f"{PEERS_VENV} is missing or out of date (made with other pins)")
    print(f"Installing {', '.join(PEERS_REQUIREMENTS)} in {PEERS_VENV} ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(PEERS_VENV)],
        [str(python), "-m", "pip", "install", "--quiet", *PEERS_REQUIREMENTS],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=PEERS_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"could not make {PEERS_VENV}: {exc}") from None
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
            last = (errors or done.stderr.splitlines() or ["(no output)"])[-1]
            raise BenchError(f"could not make {PEERS_VENV}: {' '.join(step[:4])}: {last}")
    stamp.write_text(wanted)
    return python


def jupyter_server_command(
    python: Path, port: int, root: str, token: str, *flags: str
) -> list[str]:
    """Jupyter Server from the peers' virtualenv on ``port``, serving ``root``, with the
    server extensions installed there (JupyterLab's, the collaboration ones among them), token
    authentication, no browser, logging warnings only (as ``kernelpad_command``; the server
    extensions too), and ``flags``."""
    return [
        str(python),
        "-m",
        "jupyter_server",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--no-browser",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--log-level=WARN",
        "--ExtensionApp.log_level=WARN",  # the extensions have a level of their own
        "--allow-root",  # the benchmarks may run as root, as on this machine
        *flags,
    ]


def jupyter_environment(home: Path) -> dict[str, str]:
    """The environment for a Jupyter Server started by a benchmark: its configuration, data
    and runtime folders under ``home`` (a temporary folder), so that nothing of this machine's
    own Jupyter set-up (``~/.jupyter``) changes what is measured, and nothing is left behind.
    The extensions' own configuration, in the virtualenv's ``etc/jupyter``, still applies."""
    env = dict(os.environ)
    for name, folder in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
    ):
        env[name] = str(home / folder)
    env.pop("VIRTUAL_ENV", None)
    return env


class SessionSocket:
    """A host's connection to a kernelpad session over the JSON protocol, joined as the pad
    joins, for timing runs as the pad sends them."""

    def __init__(self, conn: WebSocketClientConnection, session_id: str) -> None:
        self.conn = conn
        self.session_id = session_id

    @classmethod
    async def join(cls, port: int, session_id: str, token: str) -> SessionSocket:
        conn = await websocket_connect(f"ws://127.0.0.1:{port}/ws/sessions/{session_id}")
        join = {
            "session_id": session_id,
            "client_id": "bench",
            "display_name": "Bench",
            "code_updates": False,
        }
        await conn.write_message(
            json.dumps({"type": "join_session", "data": {**join, "host_token": token}})
        )
        joined = cls(conn, session_id)
        await joined.expect("session_state")
        return joined

    async def expect(self, kind: str) -> dict[str, Any]:
        """The data of the next message of ``kind`` (others are skipped; an error raises)."""
        while True:
            raw = await self.conn.read_message()
            if raw is None:
                raise BenchError(f"the socket of {self.session_id} closed")
            message = json.loads(raw)
            if message["type"] == kind:
                return message["data"]  # type: ignore[no-any-return]
            if message["type"] == "error":
                raise BenchError(f"the socket said {message['data']}")

    async def run(self, request: dict[str, Any]) -> None:
        """One ``execute`` (``request`` is its data), until its ``execution_finished``."""
        await self.conn.write_message(json.dumps({"type": "execute", "data": request}))
        finished = await self.expect("execution_finished")
        if finished["status"] != "ok":
            raise BenchError(f"a run over the socket ended {finished['status']}")

    def close(self) -> None:
        self.conn.close()


async def timed(
    run: Callable[[], Awaitable[object]], runs: int, warmup: int, gap: float
) -> list[float]:
    """Seconds each of ``runs`` awaits of ``run()`` took, after ``warmup`` untimed ones, with
    ``gap`` seconds between them (which also keeps a JSON socket under its message rate)."""
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        await run()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
        await asyncio.sleep(gap)
    return times


async def server_histograms(url: str) -> dict[str, list[tuple[float, float]]]:
    """The histograms of a kernelpad's ``/metrics``: name -> its cumulative buckets, (upper
    bound, count) from the smallest bound to +Inf, summed over its labels (every language's
    runs, say)."""
    from prometheus_client.parser import text_string_to_metric_families
    from tornado.httpclient import AsyncHTTPClient

    response = await AsyncHTTPClient().fetch(url + "/metrics", request_timeout=30)
    found: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(response.body.decode()):
        if family.type != "histogram":
            continue
        summed: dict[float, float] = {}
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                summed[bound] = summed.get(bound, 0.0) + sample.value
        if summed:
            found[family.name] = sorted(summed.items())
    return found


def histogram_summary(
    before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> dict[str, Any]:
    """What was observed between two scrapes of one histogram: its count, and p50 and p99 in
    ms, interpolated within their buckets as Prometheus's ``histogram_quantile`` does (so they
    are as fine as the buckets: a p99 in the last finite bucket or past it reads as that
    bucket's bound)."""
    earlier = dict(before)
    counts = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]
    total = counts[-1][1] if counts else 0.0

    def quantile(q: float) -> float | None:
        if total <= 0:
            return None
        rank, lower, below = q * total, 0.0, 0.0
        for bound, cumulative in counts:
            if cumulative >= rank:
                if bound == float("inf"):
                    return round(lower * 1000, 2)
                share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
                return round((lower + (bound - lower) * share) * 1000, 2)
            lower, below = bound, cumulative
        return round(lower * 1000, 2)

    return {"count": int(total), "p50_ms": quantile(0.5), "p99_ms": quantile(0.99)}
