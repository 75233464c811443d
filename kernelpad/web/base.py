"""The base of every API handler: JSON in and out, errors as JSON, CORS, body size."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

import pydantic
import tornado.web

from kernelpad import errors
from kernelpad.config import Settings
from kernelpad.logs import about
from kernelpad.sessions.manager import SessionManager
from kernelpad.sessions.storage.database import DatabaseUnavailable
from kernelpad.web.refusals import Who, log_refusal
from kernelpad.web.schemas import ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)

M = TypeVar("M", bound=pydantic.BaseModel)
F = TypeVar("F", bound=Callable[..., Any])

# HTTP status of each kind of error the lower layers raise.
STATUS: dict[type[errors.KernelpadError], int] = {
    errors.NotAuthenticated: 401,
    errors.Forbidden: 403,
    errors.ParticipantRemoved: 403,
    errors.ExecutionDisabled: 403,
    errors.SessionNotFound: 404,
    errors.ParticipantNotFound: 404,
    errors.QuestionNotFound: 404,
    errors.EditingLocked: 403,
    errors.SessionEnded: 409,
    errors.SessionFull: 409,  # said on the sockets only: registering connects nobody
    errors.QueueFull: 409,
    errors.UnknownLanguage: 422,
    errors.LanguageUnavailable: 422,
    errors.InvalidValue: 422,
    errors.DocumentTooLarge: 413,
    errors.ChangeNotMerged: 409,
    errors.RateLimited: 429,
    errors.SessionElsewhere: 503,
    errors.KernelStartFailed: 503,
    DatabaseUnavailable: 503,
}


def status_of(exc: errors.KernelpadError) -> int:
    """The HTTP status of an error: its nearest class's (a subclass answers as its kind)."""
    return next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)


class ApiError(tornado.web.HTTPError):
    """An HTTP error with a code and a message for the JSON body."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(status, reason=None)
        self.code = code
        self.message = message
        self.details = details


@dataclass
class Operation:
    """What the OpenAPI document says of one handler method."""

    summary: str
    body: type[pydantic.BaseModel] | None = None
    query: type[pydantic.BaseModel] | None = None
    responses: dict[int, type[pydantic.BaseModel] | None] = field(default_factory=dict)
    host_auth: bool = False
    tags: tuple[str, ...] = ()


def error_responses(*statuses: int) -> dict[int, type[pydantic.BaseModel] | None]:
    """``responses`` entries for error statuses: every error has the same JSON body."""
    return {status: ErrorResponse for status in statuses}


def operation(summary: str, **kw: Any) -> Callable[[F], F]:
    """Describe a handler method for the OpenAPI document."""

    def mark(method: F) -> F:
        method.__openapi__ = Operation(summary, **kw)  # type: ignore[attr-defined]
        return method

    return mark


@tornado.web.stream_request_body
class ApiHandler(tornado.web.RequestHandler):
    """JSON API handler.

    The body is streamed so that an oversized one is counted and dropped rather than held in
    memory, and answered with a JSON 413 instead of a dropped connection.
    """

    def initialize(self) -> None:
        self._body_parts: list[bytes] = []
        self._body_size = 0
        # Who the request speaks for, once a handler knows (for the log of a refusal): the
        # client_id it names, the role its token gives.
        self.client_id: str | None = None
        self.role: str | None = None

    def prepare(self) -> None:
        # Tracked so that a stopping server can let answers already being worked on go out.
        self.application.settings["in_flight"].add(self)

    def on_finish(self) -> None:
        self.application.settings["in_flight"].discard(self)

    def on_connection_close(self) -> None:
        self.application.settings["in_flight"].discard(self)

    @property
    def kp_settings(self) -> Settings:
        settings: Settings = self.application.settings["kernelpad"]
        return settings

    @property
    def manager(self) -> SessionManager:
        manager: SessionManager = self.application.settings["manager"]
        return manager

    @property
    def public_url(self) -> str:
        """Where join links point: FRONTEND_URL, or where this request came to (a proxy in
        front, such as JupyterHub's, keeps the Host header its client sent)."""
        if self.kp_settings.frontend_url:
            return self.kp_settings.frontend_url.rstrip("/")
        return f"{self.request.protocol}://{self.request.host}{self.kp_settings.base_url}".rstrip(
            "/"
        )

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        origin = self.request.headers.get("Origin")
        if origin and self._origin_allowed(origin):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Vary", "Origin")

    def _origin_allowed(self, origin: str) -> bool:
        allowed = self.kp_settings.cors_origins
        return "*" in allowed or origin.rstrip("/") in (o.rstrip("/") for o in allowed)

    def data_received(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size <= self.kp_settings.max_request_size:
            self._body_parts.append(chunk)
        else:
            self._body_parts.clear()

    def options(self, *args: str, **kwargs: str) -> None:
        """CORS preflight: allowed origins get the methods this path supports."""
        origin = self.request.headers.get("Origin", "")
        if not self._origin_allowed(origin):
            raise ApiError(403, "cors_origin", f"Origin {origin!r} is not in CORS_ORIGINS.")
        # Tornado's RequestHandler answers every method with 405: these are the ones defined.
        methods = [
            method
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
            if getattr(type(self), method.lower())
            is not getattr(tornado.web.RequestHandler, method.lower())
        ]
        self.set_header("Access-Control-Allow-Methods", ", ".join(methods))
        self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)

    # Input

    def body(self, model: type[M]) -> M:
        """The request body validated as ``model``: 415, 413, 400 or 422 with the reason if
        not."""
        self._require_json()
        limit = self.kp_settings.max_request_size
        if self._body_size > limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"The request body is {self._body_size} bytes; the limit is {limit} bytes.",
            )
        raw = b"".join(self._body_parts)
        try:
            data = json.loads(raw or b"null")
        except RecursionError:
            raise ApiError(
                400, "invalid_json", "The request body is nested too deeply to be read."
            ) from None
        except ValueError as exc:
            raise ApiError(
                400, "invalid_json", f"The request body is not valid JSON: {exc}."
            ) from None
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
        return self._validate(model, data, "body")

    def _require_json(self) -> None:
        """A body must be declared JSON. What another site's page can send without asking
        first (a form, a ``no-cors`` fetch) is ``text/plain``, a form's encoding or none, never
        JSON; JSON from another origin needs a CORS preflight, which only CORS_ORIGINS pass."""
        declared = self.request.headers.get("Content-Type", "")
        kind = declared.partition(";")[0].strip().lower()
        if kind != "application/json" and not (
            kind.startswith("application/") and kind.endswith("+json")
        ):
            raise ApiError(
                415,
                "unsupported_media_type",
                "The request body must be JSON, sent as 'Content-Type: application/json'"
                + (f" (it came as {declared!r})." if declared else " (it came without a type)."),
            )

    def query(self, model: type[M]) -> M:
        """The query string validated as ``model``."""
        args = {name: self.get_query_argument(name) for name in self.request.query_arguments}
        return self._validate(model, args, "query")

    @staticmethod
    def _validate(model: type[M], data: dict[str, Any], where: str) -> M:
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            details = [
                {
                    "field": ".".join(str(part) for part in err["loc"]) or where,
                    "problem": err["msg"],
                    "type": err["type"],
                }
                for err in exc.errors(include_url=False, include_input=False)
            ]
            summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
            raise ApiError(
                422, "validation_error", f"Invalid {where}: {summary}.", details
            ) from None

    def bearer_token(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def require_token(self, expected: str, setting: str, what: str) -> None:
        """Raise unless the request's bearer token is ``expected``, the value of the setting
        ``setting``; ``what`` the request would do, for the message."""
        token = self.bearer_token()
        if not token:
            raise errors.NotAuthenticated(
                f"{what} needs the token set as {setting} ('Authorization: Bearer <{setting}>')."
            )
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise errors.Forbidden(f"That is not the token set as {setting}.")

    # Output

    def respond(self, model: pydantic.BaseModel, status: int = 200) -> None:
        self.set_status(status)
        self.finish(model.model_dump_json())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            detail = ErrorDetail(code=exc.code, message=exc.message, details=exc.details)
        elif isinstance(exc, errors.KernelpadError):
            self.set_status(status_of(exc))
            detail = ErrorDetail(code=exc.code, message=exc.public)
            if isinstance(exc, errors.RateLimited | errors.SessionElsewhere):
                self.set_header("Retry-After", str(int(exc.retry_after)))
        elif isinstance(exc, tornado.web.HTTPError):
            detail = ErrorDetail(code=f"http_{status_code}", message=self._reason)
        else:
            detail = ErrorDetail(
                code="internal_error", message="kernelpad hit an internal error; see its log."
            )
        self.finish(ErrorResponse(error=detail).model_dump_json(exclude_none=True))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            status, code, message = value.status_code, value.code, value.message
        elif isinstance(value, errors.KernelpadError):
            status, code, message = status_of(value), value.code, value.message
        elif isinstance(value, tornado.web.HTTPError):  # Tornado's own: 405, say
            status, code = value.status_code, f"http_{value.status_code}"
            message = value.reason or HTTPStatus(status).phrase
        else:
            super().log_exception(typ, value, tb)
            return
        # A method Tornado refuses (405) is refused before the path is read.
        request = self.request
        session_id = getattr(self, "path_kwargs", {}).get("session_id")
        if status >= 500:
            # The server's trouble (a kernel or the database unavailable), not a refusal.
            log.warning("%s %s: %s", request.method, request.path, message, extra=about(session_id))
            return
        who = Who(session_id, self.client_id, self.role, request.remote_ip, self._has_token())
        log_refusal(log, who, f"{request.method} {request.path}", status, code, message)

    def _has_token(self) -> bool:
        return bool(self.request.headers.get("Authorization"))


class NotFoundHandler(ApiHandler):
    """JSON 404 for any path that matches no route."""

    def prepare(self) -> None:
        raise ApiError(404, "not_found", f"There is no endpoint at {self.request.path}.")
