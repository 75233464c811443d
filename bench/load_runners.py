"""The interviews' runs for ``load.py``, from a process of their own.

Each interview of the load has a JSON-protocol client that runs code every few seconds, and
its run latency is the load's main figure. Timed from the process that also carries the 300
typists' documents at 150 interviews (a quarter of a core, its event loop up to 3 ms late at
p99), every run's time included that loop's waits twice, once to send and once to read the
end, where a candidate's browser shares nothing with anyone's. So the runners live here, in a
process whose loop has only them, and ``load.py`` drives it over its stdin and stdout, one JSON
line each way:

- at start, the job (the server's port, the interviews); answered ``{"connected": ...}`` once
  every runner has joined its session;
- ``{"do": "warm", "at_once": N}``: each interview's first run in each of its languages, at
  most N at a time; answered with the seconds it took and the runs that failed;
- ``{"do": "go", "run_every": S, "busy": B}``: the runs start (the first B interviews run a
  loop that keeps a core busy instead);
- ``{"do": "stop"}``: they stop; answered with every run, every error and this process's
  event-loop lag meanwhile;
- ``{"do": "close"}``: the runners leave; answered once they have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from harness import BenchError, loop_lag
from tornado.websocket import WebSocketClientConnection, websocket_connect

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
RUN_TIMEOUT = 120.0
ANSWER_TIMEOUT = 600.0  # seconds for this process to answer a command (a warm-up at 150)


@dataclass(eq=False)
class Runs:
    """One interview's runner: its session, and what its runs gave."""

    index: int
    id: str
    token: str
    languages: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    closing: bool = False
    conn: WebSocketClientConnection | None = None
    finished: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def connect(self, port: int) -> None:
        url = f"ws://127.0.0.1:{port}/ws/sessions/{self.id}"
        self.conn = await websocket_connect(url, on_message_callback=self._on_message)
        self.conn.protocol.stream.set_nodelay(True)  # type: ignore[union-attr]
        join = {
            "client_id": "runner",
            "display_name": "Runner",
            "host_token": self.token,
            # As the pad's JSON socket: the code reaches it over Yjs.
            "code_updates": False,
        }
        await self.conn.write_message(json.dumps({"type": "join_session", "data": join}))

    def _on_message(self, message: str | bytes | None) -> None:
        if message is None:
            if not self.closing:
                self.errors.append("the runner's JSON socket closed")
            return
        data = json.loads(message)
        if data["type"] == "execution_finished":
            self.finished.put_nowait(data["data"])
        elif data["type"] == "error" and data["data"]["code"] != "throttled":
            self.errors.append(f"error message: {data['data']}")

    async def run(self, language: str, code: str | None = None) -> dict[str, Any]:
        assert self.conn is not None
        started = time.perf_counter()
        code = CODE[language] if code is None else code
        message = {"type": "execute", "data": {"code": code, "language": language}}
        # This machine's clock, as the server's record of the run (load.run_split).
        sent_at = time.time()
        await self.conn.write_message(json.dumps(message))
        finished = await asyncio.wait_for(self.finished.get(), RUN_TIMEOUT)
        finished["latency"] = time.perf_counter() - started
        finished["sent_at"], finished["received_at"] = sent_at, time.time()
        return finished

    async def run_on(self, every: float, stop: asyncio.Event) -> None:
        """A run every ``every`` seconds or so, the languages in turn."""
        turn = 0
        await asyncio.sleep(random.uniform(0, every))
        while not stop.is_set():
            language = self.languages[turn % len(self.languages)]
            turn += 1
            try:
                finished = await self.run(language)
            except TimeoutError:
                self.errors.append(f"a {language} run did not finish within {RUN_TIMEOUT:g} s")
                continue
            if finished["status"] != "ok":
                self.errors.append(f"a {language} run ended {finished['status']}")
            self.runs.append({**finished, "language": language})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(0.5, 1.5) * every)

    async def keep_busy(self, stop: asyncio.Event) -> None:
        """A candidate whose code keeps a core busy all along (an accidental O(n^3), a loop
        that does not end): what the other interviews must not feel much of."""
        while not stop.is_set():
            finished = await self.run("python", BUSY_CODE)
            if finished["status"] != "ok":
                self.errors.append(f"a busy run ended {finished['status']}")


# This process's side


async def serve() -> None:
    job = json.loads(await asyncio.to_thread(sys.stdin.readline))
    interviews = [Runs(**interview) for interview in job["interviews"]]
    await asyncio.gather(*(interview.connect(job["port"]) for interview in interviews))
    answer({"connected": len(interviews)})
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    lags: list[float] = []
    while line := await asyncio.to_thread(sys.stdin.readline):
        command = json.loads(line)
        if command["do"] == "warm":
            answer(await warm(interviews, command["at_once"]))
        elif command["do"] == "go":
            tasks = [asyncio.create_task(loop_lag(lags, stop))]
            for interview in interviews:
                if interview.index < command["busy"]:
                    tasks.append(asyncio.create_task(interview.keep_busy(stop)))
                else:
                    tasks.append(asyncio.create_task(interview.run_on(command["run_every"], stop)))
        elif command["do"] == "stop":
            stop.set()
            await asyncio.gather(*tasks)
            answer(
                {
                    "runs": [interview.runs for interview in interviews],
                    "errors": [interview.errors for interview in interviews],
                    "loop_lag": lags,
                }
            )
        elif command["do"] == "close":
            for interview in interviews:
                interview.closing = True
                if interview.conn is not None:
                    interview.conn.close()
            answer({"closed": True})
            return


async def warm(interviews: list[Runs], at_once: int) -> dict[str, Any]:
    """Each interview's first run in each of its languages (they start its kernels), at most
    ``at_once`` at a time."""
    began = time.perf_counter()
    limit = asyncio.Semaphore(at_once)

    async def first_run(interview: Runs, language: str) -> dict[str, Any]:
        async with limit:
            return await interview.run(language)

    warm = await asyncio.gather(
        *(first_run(interview, lang) for interview in interviews for lang in interview.languages)
    )
    failed = [w for w in warm if w["status"] != "ok"]
    return {"runs": len(warm), "seconds": time.perf_counter() - began, "failed": failed[:3]}


def answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# load.py's side


class RunnerProcess:
    """This module's process, driven from ``load.py`` (see the module)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, port: int, interviews: list[dict[str, Any]]) -> RunnerProcess:
        """Started with the job, once every runner has joined its session."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**30,  # the runs come back on one line
        )
        runners = cls(proc)
        await runners._tell({"port": port, "interviews": interviews})
        await runners._answer()
        return runners

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _tell(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), ANSWER_TIMEOUT)
        if not line:
            raise BenchError(f"the runners' process ended (exit code {await self.proc.wait()})")
        answered: dict[str, Any] = json.loads(line)
        return answered

    async def warm(self, at_once: int) -> dict[str, Any]:
        await self._tell({"do": "warm", "at_once": at_once})
        return await self._answer()

    async def go(self, run_every: float, busy: int) -> None:
        await self._tell({"do": "go", "run_every": run_every, "busy": busy})

    async def stop(self) -> dict[str, Any]:
        await self._tell({"do": "stop"})
        return await self._answer()

    async def close(self) -> None:
        """The runners leave their sessions, and the process ends."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self._tell({"do": "close"})
            await self._answer()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


if __name__ == "__main__":
    asyncio.run(serve())
