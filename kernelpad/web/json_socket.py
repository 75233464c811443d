"""``/ws/sessions/{session_id}``: the original JSON protocol (SEED_API.md).

A client joins (``join_session``), then edits the code as a whole text (``code_update``), runs
code or cells (``execute``), stops and restarts kernels, and answers input requests. What it may
do, the session's access rules decide, as for the same request over HTTP; the server's events
are :mod:`kernelpad.sessions.events`, serialised here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pydantic

from kernelpad import errors
from kernelpad.sessions.access import Action
from kernelpad.sessions.events import Error, Event, SessionState
from kernelpad.sessions.room.room import Room
from kernelpad.web.messages import (
    CellData,
    CodeUpdateData,
    ExecuteData,
    InputReplyData,
    IntrospectData,
    JoinSessionData,
    KernelData,
    MoveCellData,
    SocketMessage,
)
from kernelpad.web.socket_base import ENDED, FULL, SessionSocketBase, pending, problem

log = logging.getLogger(__name__)


class SessionSocket(SessionSocketBase):
    """``/ws/sessions/{session_id}``: the original JSON protocol (SEED_API.md)."""

    protocol = "json"
    name = "JSON"

    _told_throttled = 0.0

    async def open(self, session_id: str) -> None:
        await self._enter(session_id)

    def send_event(self, event: Event) -> None:
        timestamp = datetime.now(UTC).isoformat()
        self._write(json.dumps({"type": event.type, "data": event.data, "timestamp": timestamp}))

    def error(self, code: str, message: str, cell_id: str | None = None) -> None:
        if cell_id is None:
            self.send_event(Error(code=code, message=message))
        else:
            self.send_event(Error(code=code, message=message, cell_id=cell_id))

    def _throttled(self) -> None:
        super()._throttled()
        now = time.monotonic()
        if now - self._told_throttled >= 1.0:
            self._told_throttled = now
            limit = self.throttle.per_second
            self.error(
                "throttled",
                f"More than {limit} messages a second: kernelpad now reads this connection's"
                " messages more slowly (none is dropped).",
            )

    async def on_message(self, message: str | bytes) -> None:
        await self._wait_turn()
        if self.room is None or self.closed:
            return
        if isinstance(message, bytes):
            self.mistake(
                "a message",
                "binary_frame",
                "This socket takes JSON text messages, not binary frames.",
            )
            return
        try:
            envelope = SocketMessage.model_validate_json(message)
        except pydantic.ValidationError as exc:
            self.mistake("a message", *problem(exc))
            return
        handler = getattr(self, f"_on_{envelope.type}", None)
        if handler is None:
            self.mistake(
                "a message",
                "unknown_type",
                f"Unknown message type {envelope.type!r}; expected one of: join_session,"
                " code_update, move_cell, delete_cell, undo_cell, execute, interrupt,"
                " restart_kernel, input_reply, complete, inspect, grade.",
            )
            return
        what = envelope.type
        try:
            await handler(envelope.data)
        except pydantic.ValidationError as exc:
            self.mistake(what, *problem(exc, what))
        except errors.SessionFull as exc:
            self.error(exc.code, exc.public)
            self.close_refused(what, FULL, exc, "session full")
        except errors.SessionEnded as exc:
            self.error(exc.code, exc.public)
            self.close_refused(what, ENDED, exc)
        except errors.ParticipantRemoved as exc:
            self.error(exc.code, exc.public)
            self.close_refused(what, FULL, exc)
        except errors.KernelpadError as exc:
            self.error(exc.code, exc.public)
            self.refused_error(what, exc)

    def mistake(self, what: str, code: str, message: str) -> None:
        """A message that is not what the protocol takes: the sender is told (the log has it
        at INFO: an honest client's mistake, most often)."""
        self.error(code, message)
        self.refused(what, 400, code, message)

    async def _on_join_session(self, data: dict[str, Any]) -> None:
        room = self.room
        assert room is not None
        join = JoinSessionData.model_validate(data)
        if join.session_id is not None and join.session_id != room.session_id:
            raise errors.InvalidValue(
                f"session_id {join.session_id!r} is not this socket's session ({room.session_id})."
            )
        if self.participant is None:
            # A client_id the original protocol names without a token stays open to whoever
            # names it (as SEED_API.md has it); one registered with a token needs the token.
            await self._join(room, join)
        elif join.client_id != self.participant.client_id:
            raise errors.InvalidValue(
                f"This connection has joined as {self.participant.client_id!r}; open another"
                " connection to join as someone else."
            )
        # (Again at a second join: it may change code_updates, and its session_state below
        # is the text the connection has from now on.)
        room.add_json_peer(self, code_updates=join.code_updates)
        participants = room.participants()
        rules = self.manager.access.rules(room.session_id)
        self.send_event(
            SessionState(
                session_id=room.session_id,
                client_id=self.client_id,
                role=self.role,
                code=room.text.code,
                language=room.document.language,
                version=room.text.version,
                kernels=self.manager.runs.kernel_states(room.session_id),
                inputs=room.inputs.open(),
                editing_locked=rules.editing_locked,
                candidate_execution=rules.candidate_execution,
                time_limit=rules.time_limit,
                runs_per_minute=rules.runs_per_minute,
                review_after_end=rules.review_after_end,
                share_score=rules.share_score,
                statement=room.brief.statement,
                suggested_minutes=room.brief.suggested_minutes,
                participant_count=len(participants),
                participants=participants,
            )
        )

    def _joined(self, what: str) -> Room:
        if self.room is None or self.participant is None:
            raise errors.InvalidValue(f"Send join_session before {what}.")
        return self.room

    async def _on_execute(self, data: dict[str, Any]) -> None:
        room = self._joined("execute")
        request = ExecuteData.model_validate(data)
        if request.cell_id is not None:
            cell = room.document.cell(request.cell_id)
            if cell is None:
                raise errors.InvalidValue(f"There is no cell {request.cell_id!r} in this notebook.")
            # The sender's own text of the cell, if it sent one: its last keystrokes may still
            # be on their way over the Yjs socket. Not while editing is locked for the sender:
            # then the cell runs as everyone sees it.
            own = request.code is not None and self.manager.access.allows(
                room.session_id, self.role, Action.EDIT
            )
            code = request.code if own and request.code is not None else cell[0]
            language = request.language or cell[1]
        elif request.code is not None:
            code, language = request.code, request.language or room.document.language
        else:
            raise errors.InvalidValue("execute needs a cell_id, or code (and a language).")
        # The run goes on by itself: this socket keeps reading (an interrupt, input replies).
        # Whether this participant may run this code, the access rules say (as for HTTP).
        task = asyncio.ensure_future(
            self._run_code(room, code, language, request.time_limit, request.cell_id)
        )
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def _run_code(
        self, room: Room, code: str, language: str, time_limit: int | None, cell_id: str | None
    ) -> None:
        try:
            await self.manager.runs.execute(
                room.session_id,
                code,
                self.role,
                language,
                time_limit,
                None,
                cell_id,
                self.client_id,
            )
        except errors.KernelpadError as exc:
            self.error(exc.code, exc.public, cell_id)
            self.refused_error("execute", exc)
        except Exception:
            log.exception("session %s: a run from a socket failed", room.session_id)
            self.error("internal_error", "kernelpad hit an internal error; see its log.")

    async def _on_interrupt(self, data: dict[str, Any]) -> None:
        room = self._joined("interrupt")
        request = KernelData.model_validate(data)
        runs, session_id = self.manager.runs, room.session_id
        if request.execution_id is not None:
            if not runs.interrupt(session_id, self.role, request.language, request.execution_id):
                self.error("not_running", f"The run {request.execution_id} is not running.")
            return
        language = request.language or room.document.language
        if not runs.interrupt(session_id, self.role, language):
            self.error("not_running", f"No {language} code is running in this session.")

    async def _on_restart_kernel(self, data: dict[str, Any]) -> None:
        room = self._joined("restart_kernel")
        language = KernelData.model_validate(data).language or room.document.language
        await self.manager.runs.restart_kernel(room.session_id, self.role, language)

    async def _on_input_reply(self, data: dict[str, Any]) -> None:
        room = self._joined("input_reply")
        reply = InputReplyData.model_validate(data)
        if not room.answer_input(self.role, reply.value, reply.execution_id):
            self.error("no_input_request", "No run is waiting for input.")

    async def _on_code_update(self, data: dict[str, Any]) -> None:
        room = self._joined("code_update")
        update = CodeUpdateData.model_validate(data)
        room.replace_code(self, update.code, update.base_version)

    async def _on_complete(self, data: dict[str, Any]) -> None:
        room = self._joined("complete")
        ask = IntrospectData.model_validate(data)
        self._answer_later(
            "complete",
            self.manager.introspection.complete(
                room.session_id, self.role, ask.code, ask.cursor_pos, ask.language, ask.request_id
            ),
        )

    async def _on_inspect(self, data: dict[str, Any]) -> None:
        room = self._joined("inspect")
        ask = IntrospectData.model_validate(data)
        self._answer_later(
            "inspect",
            self.manager.introspection.inspect(
                room.session_id,
                self.role,
                ask.code,
                ask.cursor_pos,
                ask.language,
                ask.detail_level,
                ask.request_id,
            ),
        )

    def _answer_later(self, what: str, answer: Coroutine[Any, Any, Event]) -> None:
        """Send ``answer`` to this connection when it comes; the socket reads on meanwhile (a
        kernel may take a while to answer; an execute must not wait for it)."""

        async def answered() -> None:
            try:
                self.send_event(await answer)
            except errors.KernelpadError as exc:
                self.error(exc.code, exc.public)
                self.refused_error(what, exc)

        task = asyncio.ensure_future(answered())
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def _on_grade(self, data: dict[str, Any]) -> None:
        """The host grades the notebook; every host connection hears ``grade_finished`` (this
        one too) when it is done, which takes a while: the socket reads on meanwhile."""
        room = self._joined("grade")
        if self.role != "host":
            raise errors.Forbidden(
                f"Session {room.session_id}: only the host grades.",
                public="Only the interviewer can grade the notebook.",
            )
        session = await self.manager.get(room.session_id)
        author = self.participant.client_id if self.participant else None
        grading = self.manager.grading.grade(session, author)

        async def graded() -> None:
            try:
                await grading
            except errors.KernelpadError as exc:
                self.error(exc.code, exc.public)
                self.refused_error("grade", exc)

        task = asyncio.ensure_future(graded())
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def _on_move_cell(self, data: dict[str, Any]) -> None:
        room = self._joined("move_cell")
        move = MoveCellData.model_validate(data)
        room.cells.move(self, move.cell_id, move.index)

    async def _on_delete_cell(self, data: dict[str, Any]) -> None:
        room = self._joined("delete_cell")
        room.cells.delete(self, CellData.model_validate(data).cell_id)

    async def _on_undo_cell(self, data: dict[str, Any]) -> None:
        room = self._joined("undo_cell")
        if room.cells.undo(self) is None:
            self.error("nothing_to_undo", "There is no deleted or moved cell to bring back.")

    def on_close(self) -> None:
        if self.room is not None:
            self.room.remove_json_peer(self)
        self._leave()
