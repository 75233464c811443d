"""Runs as the participants watch them: outputs as they come, input requests anyone may answer.

A run started in a session, over REST or a socket, is watched by everyone who has it open. A
cell's run also writes its outputs and count into the cell, in batches, so that Yjs-only clients
(and the record) see them; and what it tells the JSON clients (its start, outputs, input
requests, end) goes out once what the cell says of it is stored, as for every change: what
anyone has seen of a run is on disk, whatever becomes of the server.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernelpad.sessions.document import SessionDocument
from kernelpad.sessions.events import (
    Event,
    ExecutionFinished,
    ExecutionStarted,
    InputAnswered,
    InputRequest,
    KernelState,
    KernelStatus,
    Output,
)

# A run's outputs reach the document in batches, at most this often (seconds): a run that
# prints in a tight loop must not become thousands of stored updates.
OUTPUT_BATCH_DELAY = 0.05
# How a run whose record could not be stored is told (its outputs, in a cell, are in the
# document, which is stored apart from the record if need be).
NOT_RECORDED = {
    "status": "internal_error",
    "notices": ["kernelpad could not save this run's record: it is missing from the history."],
}


@dataclass(eq=False)
class _Waiting:
    """A run waiting for a line: the answer to come, and the request as it was sent."""

    answer: asyncio.Future[str | None]
    request: InputRequest


class Inputs:
    """The input requests of a session's runs waiting for an answer, oldest first."""

    def __init__(self, broadcast: Callable[[Event], None]) -> None:
        self.broadcast = broadcast
        self._waiting: collections.deque[_Waiting] = collections.deque()

    async def ask(
        self, request: InputRequest, tell: Callable[[Event], None] | None = None
    ) -> str | None:
        """Ask everyone for a line (through ``tell``, default: at once); the answer, once
        someone gives it."""
        entry = _Waiting(asyncio.get_running_loop().create_future(), request)
        self._waiting.append(entry)
        (tell or self.broadcast)(request)
        try:
            return await entry.answer
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)

    def answer(self, value: str, execution_id: str | None = None) -> bool:
        """Answer the open request of the run ``execution_id`` (default: the oldest); whether
        there was one."""
        for entry in list(self._waiting):
            if entry.answer.done():
                self._waiting.remove(entry)
            elif execution_id is None or entry.request.execution_id == execution_id:
                self._waiting.remove(entry)
                entry.answer.set_result(value)
                # Everyone else's input box for it can go.
                self.broadcast(InputAnswered(execution_id=entry.request.execution_id))
                return True
        return False

    def open(self) -> list[dict[str, Any]]:
        """The requests waiting for an answer, oldest first (for who joins now)."""
        return [entry.request.data for entry in self._waiting if not entry.answer.done()]


@dataclass(eq=False)
class Run:
    """One run as the participants see it (a :class:`kernelpad.kernels.execution.RunListener`)."""

    execution_id: str
    cell_id: str | None
    language: str
    code: str
    document: SessionDocument
    broadcast: Callable[[Event], None]
    inputs: Inputs
    #: ``after_stored(then)``: call ``then`` once every change of the document so far is
    #: stored.
    after_stored: Callable[[Callable[[], None]], None]
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _flush: asyncio.TimerHandle | None = None
    finished: bool = False

    @property
    def _ids(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "cell_id": self.cell_id,
            "language": self.language,
        }

    def _tell(self, *events: Event) -> None:
        """Send ``events`` to everyone: a cell's run, once what it wrote in the cell so far
        is stored (a run of no cell writes nothing: at once)."""

        def tell() -> None:
            for event in events:
                self.broadcast(event)

        self._when_stored(tell)

    def _when_stored(self, then: Callable[[], None]) -> None:
        if self.cell_id is None:
            then()
        else:
            self.after_stored(then)

    def _status(self, state: KernelState) -> KernelStatus:
        return KernelStatus(language=self.language, state=state)

    def started(self) -> None:
        if self.cell_id is not None:
            self.document.begin_run(self.cell_id)
        self._tell(self._status("busy"), ExecutionStarted(**self._ids, code=self.code))

    def output(self, output: dict[str, Any]) -> None:
        if self.cell_id is None:
            self.broadcast(Output(**self._ids, output=output))
            return
        self._pending.append(output)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(
                OUTPUT_BATCH_DELAY, self._write_outputs
            )

    def _take_outputs(self) -> list[dict[str, Any]]:
        """The outputs waiting for their batch, now (their batch's timer is cancelled)."""
        if self._flush is not None:
            self._flush.cancel()
        self._flush = None
        pending, self._pending = self._pending, []
        return pending

    def _write_outputs(self) -> None:
        pending = self._take_outputs()
        if pending and self.cell_id is not None:
            self.document.append_outputs(self.cell_id, pending)
            self._tell_outputs(pending)

    def _tell_outputs(self, outputs: list[dict[str, Any]]) -> None:
        """Tell ``outputs`` once they are stored. Called once the change that writes them is
        made: ``_tell`` waits for every change made so far, and no later one."""
        self._tell(*(Output(**self._ids, output=output) for output in outputs))

    def finish(self, recorded: asyncio.Future[None] | None = None, **outcome: Any) -> None:
        """Tell everyone how the run ended (the fields of
        :class:`~kernelpad.sessions.events.ExecutionFinished`) once it is stored: a cell's
        run leaves its count in the document, and ``recorded``, the run's record being
        written, must be stored too. A record that could not be is told as a failed run."""
        if self.finished:
            return
        self.finished = True
        if self.cell_id is not None:
            # Its last outputs and its count: one change of the document (one stored row, one
            # update to everyone), then told, once it is stored.
            pending = self._take_outputs()
            self.document.end_run(self.cell_id, outcome.get("execution_count"), pending)
            if pending:
                self._tell_outputs(pending)

        def tell() -> None:
            if recorded is not None and not recorded.done():
                recorded.add_done_callback(lambda _: tell())
                return
            ending = outcome
            if recorded is not None and (recorded.cancelled() or recorded.exception()):
                ending = {**outcome, **NOT_RECORDED}
            for event in self._ending(ending):
                self.broadcast(event)

        self._when_stored(tell)

    def _ending(self, outcome: dict[str, Any]) -> list[Event]:
        events: list[Event] = [ExecutionFinished(**self._ids, **outcome)]
        if outcome.get("status") == "kernel_died":
            events.append(self._status("dead"))
        if outcome.get("kernel_restarted"):
            events.append(self._status("restarting"))
        events.append(self._status("idle"))
        return events

    async def input(self, prompt: str, password: bool) -> str | None:
        # What it printed first (the prompt, often) is seen first.
        self._write_outputs()
        request = InputRequest(**self._ids, prompt=prompt, password=password)
        return await self.inputs.ask(request, self._tell)
