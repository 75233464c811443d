"""What an editor asks a session's kernel as someone types: completions (``complete_request``)
and documentation (``inspect_request``), in Jupyter's own terms.

They are questions, not runs: nothing is recorded, nobody else is told, and they never wait
behind a run. A kernel busy with a run answers "busy" at once (a completion list that comes
after the person typed on is worth nothing), and a session with no kernel yet for the language
starts one and answers "starting": the next question, and the first run, find it ready. Who may
ask is decided with the runs' rules (:class:`~kernelpad.sessions.access.Action` ``ASK_KERNEL``):
a kernel asked for completions evaluates some of what it is given.
"""

from __future__ import annotations

import logging
from typing import Any

from kernelpad.errors import InvalidValue
from kernelpad.logs import about
from kernelpad.sessions.access import Access, Action
from kernelpad.sessions.events import CompleteReply, InspectReply, KernelStatus
from kernelpad.sessions.runs import Runs

log = logging.getLogger(__name__)

# How long a kernel has to answer: an editor shows nothing rather than something late.
TIMEOUT = 3.0


class Introspection:
    """Completions and documentation from the kernels of :class:`Runs`."""

    def __init__(self, runs: Runs, access: Access) -> None:
        self.runs = runs
        self.access = access

    async def complete(
        self,
        session_id: str,
        role: str,
        code: str,
        cursor_pos: int,
        language: str | None = None,
        request_id: str | None = None,
    ) -> CompleteReply:
        """The kernel's completions at ``cursor_pos`` (a code point offset) of ``code``."""
        status, content = await self._ask(
            session_id, role, code, cursor_pos, language, "complete_request", {}
        )
        if content is None:
            return CompleteReply(request_id=request_id, status=status)
        matches = content.get("matches")
        return CompleteReply(
            request_id=request_id,
            status=status,
            matches=[m for m in matches if isinstance(m, str)][:MAX_MATCHES]
            if isinstance(matches, list)
            else [],
            cursor_start=_offset(content.get("cursor_start"), cursor_pos, len(code)),
            cursor_end=_offset(content.get("cursor_end"), cursor_pos, len(code)),
        )

    async def inspect(
        self,
        session_id: str,
        role: str,
        code: str,
        cursor_pos: int,
        language: str | None = None,
        detail_level: int = 0,
        request_id: str | None = None,
    ) -> InspectReply:
        """The kernel's documentation of what is at ``cursor_pos`` of ``code``."""
        status, content = await self._ask(
            session_id,
            role,
            code,
            cursor_pos,
            language,
            "inspect_request",
            {"detail_level": 1 if detail_level else 0},
        )
        if content is None:
            return InspectReply(request_id=request_id, status=status)
        data = content.get("data")
        found = bool(content.get("found")) and isinstance(data, dict)
        return InspectReply(
            request_id=request_id,
            status=status,
            found=found,
            bundle={
                str(mime): value[:MAX_DOC]
                for mime, value in (data.items() if found and isinstance(data, dict) else ())
                if mime in ("text/plain", "text/markdown") and isinstance(value, str)
            },
        )

    async def _ask(
        self,
        session_id: str,
        role: str,
        code: str,
        cursor_pos: int,
        language: str | None,
        msg_type: str,
        extra: dict[str, Any],
    ) -> tuple[str, dict[str, Any] | None]:
        session_language = await self.runs.active_language(session_id)
        self.access.check(session_id, role, Action.ASK_KERNEL)
        limit = self.access.limits.max_code_size
        if len(code) > limit:
            raise InvalidValue(f"The code is {len(code)} characters long; the limit is {limit}.")
        if not 0 <= cursor_pos <= len(code):
            raise InvalidValue(f"The cursor ({cursor_pos}) is outside the code.")
        installed = self.runs.registry.get(language or session_language)
        runner = self.runs.runner(session_id, installed)
        language_id = installed.language.id
        start = runner.warm()
        if start is not None:
            # Everyone's kernel indicator follows, as for a run's start.
            self._tell(session_id, KernelStatus(language=language_id, state="starting"))
            start.add_done_callback(
                lambda _: self._tell(
                    session_id,
                    KernelStatus(language=language_id, state="idle" if runner.kernel else "dead"),
                )
            )
            return "starting", None
        content = {"code": code, "cursor_pos": cursor_pos, **extra}
        status, reply = await runner.ask(msg_type, content, TIMEOUT)
        if reply is None:
            log.debug(
                "session %s: %s got no answer (%s)",
                session_id,
                msg_type,
                status,
                extra=about(session_id, installed.language.id),
            )
            return status, None
        answer = reply.get("content")
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            return "error", None
        return "ok", answer

    def _tell(self, session_id: str, event: KernelStatus) -> None:
        room = self.runs.rooms.loaded(session_id)
        if room is not None:
            room.broadcast(event)


# What one answer may hold, whatever a kernel sends.
MAX_MATCHES = 500
MAX_DOC = 100_000


def _offset(value: object, default: int, end: int) -> int:
    """A cursor offset a kernel sent, if it is one within the code."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= end:
        return value
    return default
