"""The least a server between a client and a kernel can do, timed as kernelpad is: the floor of
``execute_latency.py``'s trivial runs through a server.

jupyter_client straight to a kernel (the issue's floor for a trivial run) leaves out what any
service must add: a process between the client and the kernel, woken once by the request and
once by each of the kernel's messages, and the client woken by its answer. This server adds
only that. It holds one jupyter_client connection to a kernel someone else started (its
connection file) and answers

- ``POST /run`` with ``{"code": ...}``: the run's outputs as one JSON body, once the kernel's
  reply and idle status are in (and, for a language with a done probe, the probe's marker, as
  kernelpad settles a run);
- a WebSocket at ``/ws``: each ``{"code": ...}`` message runs; each output is sent as it comes,
  then ``{"type": "finished", "status": ...}``.

No sessions, no rules, no record, no document: what kernelpad's runs take beyond this server's
is kernelpad's own. ``execute_latency.py`` starts it (:func:`floor_server`) on a kernel of its
own, started from the same kernelspec as the others, and times it with :class:`FloorRuns`:

    python bench/server_floor.py --port PORT --connection-file FILE [--probe CODE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from harness import BenchError, free_port, log_tail, run_on_kernelpads_loop, stop_process
from jupyter_client.asynchronous.client import AsyncKernelClient
from late_output import drain_late
from tornado import web, websocket
from tornado.websocket import WebSocketClientConnection, websocket_connect

OUTPUTS = {"stream", "execute_result", "display_data", "error"}
RUN_TIMEOUT = 30.0  # seconds; as execute_latency.py's runs
START_TIMEOUT = 60.0


class Kernel:
    """One kernel's client, one run at a time (as one interview's kernel runs them)."""

    def __init__(self, connection_file: str, probe: str) -> None:
        self.kc = AsyncKernelClient(connection_file=connection_file)
        self.kc.load_connection_file()
        self.probe = probe
        self.lock = asyncio.Lock()

    async def run(self, code: str, sent: Callable[[dict[str, Any]], None]) -> str:
        """Run ``code``, giving each output to ``sent`` as it comes; the reply's status."""
        async with self.lock:

            def output(msg: dict[str, Any]) -> None:
                if msg["header"]["msg_type"] in OUTPUTS:
                    sent({"output_type": msg["header"]["msg_type"], **msg["content"]})

            # Until the reply and the idle status are in, each message of the run to output().
            reply = await self.kc.execute_interactive(
                code, allow_stdin=False, timeout=RUN_TIMEOUT, output_hook=output
            )
            if self.probe:  # output that came after the idle status is the run's too
                msg_id = reply["parent_header"]["msg_id"]
                await drain_late(self.kc, msg_id, self.probe, RUN_TIMEOUT, output)
            return str(reply["content"]["status"])


class RunHandler(web.RequestHandler):
    async def post(self) -> None:
        kernel: Kernel = self.settings["kernel"]
        outputs: list[dict[str, Any]] = []
        status = await kernel.run(json.loads(self.request.body)["code"], outputs.append)
        self.write({"status": status, "outputs": outputs})


class RunSocket(websocket.WebSocketHandler):
    def open(self) -> None:
        # A run's outputs and its end are small writes one after the other: without this,
        # Nagle holds the second until the client's delayed ACK of the first (40 ms here).
        self.set_nodelay(True)

    async def on_message(self, message: str | bytes) -> None:
        kernel: Kernel = self.settings["kernel"]

        def sent(output: dict[str, Any]) -> None:
            self.write_message({"type": "output", "data": output})

        status = await kernel.run(json.loads(message)["code"], sent)
        self.write_message({"type": "finished", "status": status})


async def serve(port: int, connection_file: str, probe: str) -> None:
    kernel = Kernel(connection_file, probe)
    kernel.kc.start_channels()
    await kernel.kc.wait_for_ready(timeout=RUN_TIMEOUT)
    app = web.Application([("/run", RunHandler), ("/ws", RunSocket)], kernel=kernel)
    await serve_until_stopped(app, port)
    kernel.kc.stop_channels()


async def serve_until_stopped(app: web.Application, port: int) -> None:
    """Serve ``app`` on the loopback's ``port``, say ``ready`` on stdout (what
    :func:`serving` waits for), and stop at SIGTERM."""
    server = app.listen(port, "127.0.0.1")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.stop()


# The client side: execute_latency.py's


@contextlib.asynccontextmanager
async def floor_server(connection_file: Path, probe: str, log: Path) -> AsyncIterator[int]:
    """This server in a process of its own (as kernelpad's is), on the kernel of
    ``connection_file``, its stderr in ``log``; its port once it answers."""
    port = free_port()
    command = [sys.executable, __file__, "--port", str(port)]
    command += ["--connection-file", str(connection_file), "--probe", probe]
    async with serving(command, log, START_TIMEOUT):
        yield port


@contextlib.asynccontextmanager
async def serving(
    command: list[str], log: Path, timeout: float, new_session: bool = False
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A server floor's ``command`` started, its stderr in ``log`` (in a session of its own
    if ``new_session``), once it says it is ready (within ``timeout`` seconds); stopped after."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, start_new_session=new_session
        )
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)
        if ready.strip() != b"ready":
            raise BenchError("the server floor did not start; its log ends:\n" + log_tail(log))
        yield proc
    finally:
        stopped = stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        if not stopped:
            raise BenchError("the server floor did not stop within 30 s of SIGTERM")


class FloorRuns:
    """Trivial runs through the server floor: over one keep-alive HTTP connection (blocking,
    as the kernelpad series' is) and over its WebSocket, from the code sent to ``finished``;
    for each timed run, whether the trivial code's result came with it (``results``)."""

    def __init__(self, port: int, code: str) -> None:
        self.port = port
        self.body = json.dumps({"code": code}).encode()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=RUN_TIMEOUT + 30)
        self.socket: WebSocketClientConnection | None = None
        self.results: list[bool] = []

    def _result(self, counted: bool, outputs: list[dict[str, Any]]) -> None:
        if counted:
            self.results.append(any(o["output_type"] == "execute_result" for o in outputs))

    async def http(self, counted: bool) -> float:
        start = time.perf_counter()
        self.conn.request("POST", "/run", body=self.body)
        response = self.conn.getresponse()
        data = json.loads(response.read())
        elapsed = time.perf_counter() - start
        if response.status != 200 or data["status"] != "ok":
            raise BenchError(f"a run through the server floor answered {response.status}: {data}")
        self._result(counted, data["outputs"])
        return elapsed

    async def join(self) -> None:
        self.socket = await websocket_connect(f"ws://127.0.0.1:{self.port}/ws")

    async def ws(self, counted: bool) -> float:
        assert self.socket is not None
        outputs = []
        start = time.perf_counter()
        await self.socket.write_message(self.body.decode())
        while True:
            raw = await self.socket.read_message()
            if raw is None:
                raise BenchError("the server floor's socket closed")
            message = json.loads(raw)
            if message["type"] == "finished":
                break
            outputs.append(message["data"])
        elapsed = time.perf_counter() - start
        if message["status"] != "ok":
            raise BenchError(f"a run over the server floor's socket ended {message['status']}")
        self._result(counted, outputs)
        return elapsed

    def close(self) -> None:
        self.conn.close()
        if self.socket is not None:
            self.socket.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connection-file", required=True)
    parser.add_argument("--probe", default="", help="the language's done probe, if it has one")
    args = parser.parse_args()
    run_on_kernelpads_loop(serve(args.port, args.connection_file, args.probe))


if __name__ == "__main__":
    main()
