"""Local kernels against kernels on a Jupyter Kernel Gateway, through kernelpad.

The median and p90 of a trivial Python run (``1+1``) through ``POST .../execute``, with the
session's kernel:
1. local (kernelpad's own, sandboxed as it is by default);
2. on a stock Kernel Gateway on loopback;
3. on the same gateway with TCP_NODELAY on its kernel WebSockets (``gateway_nodelay.py``).

Each figure comes with its ratio to the local one, measured in the same run. Run it with
``.venv/bin/python bench/gateway_latency.py [--runs 200]``; figures, not pass or fail.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import BenchError, free_port, kernelpad_command, log_tail, machine_info, stop_process

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"
RESULTS_FILE = HERE / "results" / "gateway_latency.json"


class Client:
    """A keep-alive JSON client of one kernelpad."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, data, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise BenchError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return json.loads(payload)


def wait_until(check: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException, BenchError):
            if check():
                return
        time.sleep(0.2)
    raise BenchError(f"timed out waiting for {what}")


@contextlib.contextmanager
def process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc
        finally:
            stop_process(proc)


@contextlib.contextmanager
def gateway(workdir: Path, nodelay: bool) -> Iterator[str]:
    port = free_port()
    launcher = (
        [sys.executable, str(HERE / "gateway_nodelay.py")]
        if nodelay
        else [str(Path(sys.executable).with_name("jupyter-kernelgateway"))]
    )
    cmd = [
        *launcher,
        f"--KernelGatewayApp.port={port}",
        "--KernelGatewayApp.ip=127.0.0.1",
        f"--KernelGatewayApp.auth_token={TOKEN}",
    ]
    log = workdir / f"gateway-{'nodelay' if nodelay else 'stock'}.log"
    with process(cmd, log) as proc:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"the gateway exited: {log_tail(log)}")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/kernelspecs", headers={"Authorization": f"token {TOKEN}"})
            return conn.getresponse().status == 200

        wait_until(answers, "the gateway")
        yield url


@contextlib.contextmanager
def kernelpad(workdir: Path, name: str, *flags: str) -> Iterator[Client]:
    port = free_port()
    data = workdir / f"data-{name}"
    cmd = kernelpad_command(
        port,
        str(data),
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


def trivial(client: Client, runs: int, warmup: int) -> dict[str, float]:
    session = client.call("POST", "/api/v1/sessions", {"host_name": "bench"})["session_id"]
    path = f"/api/v1/sessions/{session}/execute"
    for _ in range(warmup):
        client.call("POST", path, {"code": "1+1"})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        body = client.call("POST", path, {"code": "1+1"})
        times.append(time.perf_counter() - start)
        if body["status"] != "ok":
            raise BenchError(f"a run failed: {body}")
    times.sort()
    return {
        "median_ms": round(statistics.median(times) * 1000, 2),
        "p90_ms": round(times[int(len(times) * 0.9)] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kpgateway-"))
    figures: dict[str, dict[str, float]] = {}
    print("Measuring: local kernels, then a stock Kernel Gateway, then one with TCP_NODELAY ...")
    try:
        with kernelpad(workdir, "local") as client:
            figures["local"] = trivial(client, args.runs, args.warmup)
        for nodelay in (False, True):
            name = "gateway_nodelay" if nodelay else "gateway_stock"
            with (
                gateway(workdir, nodelay) as url,
                kernelpad(
                    workdir, name, "--gateway-url", url, "--gateway-auth-token", TOKEN
                ) as client,
            ):
                figures[name] = trivial(client, args.runs, args.warmup)
    except BenchError as exc:
        sys.exit(f"benchmark aborted: {exc}")
    local = figures["local"]["median_ms"]
    print(f"\nTrivial Python run through kernelpad, {args.runs} runs each (ms):")
    print(f"{'kernel':28} {'median':>8} {'p90':>8} {'median / local':>15}")
    for name, label in (
        ("local", "local (sandboxed)"),
        ("gateway_stock", "Kernel Gateway, stock"),
        ("gateway_nodelay", "Kernel Gateway, TCP_NODELAY"),
    ):
        f = figures[name]
        print(
            f"{label:28} {f['median_ms']:8.2f} {f['p90_ms']:8.2f} {f['median_ms'] / local:14.2f}x"
        )
    results = {"machine": machine_info(), "runs": args.runs, "figures": figures}
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nFigures written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
