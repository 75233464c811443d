"""``POST /api/v1/sessions/{id}/complete`` and ``.../inspect``: a kernel's completions and
documentation over HTTP, as the JSON socket's ``complete`` and ``inspect`` give them (see
:mod:`kernelpad.sessions.introspection`)."""

from __future__ import annotations

from pydantic import Field

from kernelpad.sessions.events import CompleteReply, InspectReply
from kernelpad.web.base import ApiHandler, error_responses, operation
from kernelpad.web.schemas import LANGUAGE_PATTERN, RequestModel

TAGS = ("execution",)


class IntrospectRequest(RequestModel):
    code: str = Field(description="The code, as the editor has it.")
    cursor_pos: int = Field(ge=0, description="The cursor, in code points from the start.")
    language: str | None = Field(
        None, pattern=LANGUAGE_PATTERN, description="Defaults to the session's language."
    )
    detail_level: int = Field(0, ge=0, le=1, description="inspect: 1 for more (source).")


class _Question(ApiHandler):
    async def _asked(self, session_id: str) -> tuple[IntrospectRequest, str]:
        """The question, and the role of who asks (the host token makes it the host)."""
        req = self.body(IntrospectRequest)
        self.role = await self.manager.role_of(session_id, self.bearer_token())
        return req, self.role


class CompleteHandler(_Question):
    @operation(
        "Completions at the cursor, from the session's kernel (status busy while it runs code)",
        body=IntrospectRequest,
        responses={200: CompleteReply, **error_responses(400, 403, 404, 409, 422, 503)},
        tags=TAGS,
    )
    async def post(self, session_id: str) -> None:
        req, role = await self._asked(session_id)
        self.respond(
            await self.manager.introspection.complete(
                session_id, role, req.code, req.cursor_pos, req.language
            )
        )


class InspectHandler(_Question):
    @operation(
        "Documentation of what is at the cursor, from the session's kernel",
        body=IntrospectRequest,
        responses={200: InspectReply, **error_responses(400, 403, 404, 409, 422, 503)},
        tags=TAGS,
    )
    async def post(self, session_id: str) -> None:
        req, role = await self._asked(session_id)
        self.respond(
            await self.manager.introspection.inspect(
                session_id, role, req.code, req.cursor_pos, req.language, req.detail_level
            )
        )
