"""The Tornado application: the route table, in one place."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import tornado.web

from kernelpad import __version__
from kernelpad.config import Settings
from kernelpad.sessions.manager import SessionManager
from kernelpad.sessions.tickets import TicketStore
from kernelpad.web.base import NotFoundHandler
from kernelpad.web.docs import OpenAPIHandler, RedocHandler, SwaggerHandler
from kernelpad.web.grades import GradesHandler
from kernelpad.web.health import HealthHandler
from kernelpad.web.hosts import HostCheck, HostCheckingApplication
from kernelpad.web.introspection import CompleteHandler, InspectHandler
from kernelpad.web.json_socket import SessionSocket
from kernelpad.web.languages import LanguagesHandler, TemplateHandler
from kernelpad.web.metrics import MetricsHandler
from kernelpad.web.openapi import build_openapi
from kernelpad.web.pages import DIST, Bundle, BundleFile, HomePage, PadPage, ReplayPage
from kernelpad.web.questions import QuestionsHandler
from kernelpad.web.sessions import (
    ExecuteHandler,
    ExecutionsHandler,
    NotebookHandler,
    NotesHandler,
    ParticipantHandler,
    ParticipantsHandler,
    ReadmissionHandler,
    SessionHandler,
    SessionsHandler,
    TicketsHandler,
    TimelineHandler,
)
from kernelpad.web.yjs_socket import YjsSocket

STATIC = Path(__file__).parent / "static"

# The API, as path templates: the same table routes requests and writes /openapi.json.
API_ROUTES: list[tuple[str, type[tornado.web.RequestHandler]]] = [
    ("/api/v1/health", HealthHandler),
    ("/api/v1/sessions", SessionsHandler),
    ("/api/v1/sessions/{session_id}", SessionHandler),
    ("/api/v1/sessions/{session_id}/execute", ExecuteHandler),
    ("/api/v1/sessions/{session_id}/complete", CompleteHandler),
    ("/api/v1/sessions/{session_id}/inspect", InspectHandler),
    ("/api/v1/sessions/{session_id}/executions", ExecutionsHandler),
    ("/api/v1/sessions/{session_id}/participants", ParticipantsHandler),
    ("/api/v1/sessions/{session_id}/participants/{client_id}", ParticipantHandler),
    (
        "/api/v1/sessions/{session_id}/participants/{client_id}/readmission",
        ReadmissionHandler,
    ),
    ("/api/v1/sessions/{session_id}/tickets", TicketsHandler),
    ("/api/v1/sessions/{session_id}/notes", NotesHandler),
    ("/api/v1/sessions/{session_id}/notebook.ipynb", NotebookHandler),
    ("/api/v1/sessions/{session_id}/timeline", TimelineHandler),
    ("/api/v1/sessions/{session_id}/grades", GradesHandler),
    ("/api/v1/questions", QuestionsHandler),
    ("/api/v1/languages", LanguagesHandler),
    ("/api/v1/languages/{language_id}/template", TemplateHandler),
]


def route_pattern(template: str) -> str:
    """``/a/{name}`` as the regular expression Tornado routes by."""
    parts = re.split(r"{(\w+)}", template)  # literal, name, literal, name, ..., literal
    return (
        "".join(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
        + "/?$"
    )


def make_app(
    settings: Settings, manager: SessionManager, hub_auth: Any = None
) -> tornado.web.Application:
    """The application: every route under ``settings.base_url``; given ``hub_auth`` (a
    ``HubOAuth``: kernelpad is a JupyterHub service), starting an interview needs a Hub user."""
    home: type[tornado.web.RequestHandler] = HomePage
    replaced: dict[type[tornado.web.RequestHandler], type[tornado.web.RequestHandler]] = {}
    if hub_auth is not None:
        # Imported only here: jupyterhub is an optional dependency.
        from kernelpad.web import hub

        home = hub.hub_login(HomePage, "GET")
        # Starting interviews, and the questions to start them from, are the interviewers'.
        replaced = {
            SessionsHandler: hub.hub_login(SessionsHandler, "POST"),
            QuestionsHandler: hub.hub_login(QuestionsHandler, "GET"),
        }
    api: list[tuple[str, type[tornado.web.RequestHandler]]] = [
        (path, replaced.get(handler, handler)) for path, handler in API_ROUTES
    ]
    bundle = Bundle()
    routes: list[Any] = [(route_pattern(path), handler) for path, handler in api]
    routes += [
        (route_pattern("/ws/yjs/{session_id}"), YjsSocket),
        (route_pattern("/ws/sessions/{session_id}"), SessionSocket),
        (r"/openapi\.json", OpenAPIHandler),
        (r"/metrics", MetricsHandler),
        (r"/docs/?", SwaggerHandler),
        (r"/redoc/?", RedocHandler),
        (r"/assets/(.*)", BundleFile, {"path": str(DIST)}),
        (r"/", home, {"bundle": bundle}),
        (route_pattern("/s/{session_id}"), PadPage, {"bundle": bundle}),
        (route_pattern("/s/{session_id}/replay"), ReplayPage, {"bundle": bundle}),
    ]
    if hub_auth is not None:
        routes.append((r"/oauth_callback", hub.OAuthCallback))
    base = settings.base_url
    # Patterns are anchored at their start by Tornado; the prefix goes before the first "/".
    handlers = [(re.escape(base) + pattern[1:], *rest) for pattern, *rest in routes]
    if base != "/":
        handlers.append((re.escape(base.rstrip("/")), tornado.web.RedirectHandler, {"url": base}))
    return HostCheckingApplication(
        handlers,
        kernelpad=settings,
        hosts=HostCheck.of(settings, os.environ),
        tickets=TicketStore(),
        manager=manager,
        hub_auth=hub_auth,
        cookie_secret=settings.cookie_secret,
        openapi=build_openapi(API_ROUTES, settings.app_name, __version__, base),
        started=time.monotonic(),
        in_flight=set(),
        websocket_max_message_size=settings.max_request_size,
        websocket_ping_interval=20,
        static_path=str(STATIC),
        static_url_prefix=f"{settings.base_url}static/",
        default_handler_class=NotFoundHandler,
        debug=settings.debug,
        # Tornado's own logging of every request would repeat what the handlers say.
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    level = logging.WARNING if status >= 500 else logging.DEBUG
    logging.getLogger("kernelpad.access").log(
        level,
        "%d %s %s %.1f ms",
        status,
        handler.request.method,
        # An older Yjs client carries its tokens in the query: they must not reach the log
        # (nor need a ticket, spent or soon stale, but it is no one's business either).
        _SECRET_IN_QUERY.sub(r"\1***", handler.request.uri or ""),
        1000 * handler.request.request_time(),
    )


_SECRET_IN_QUERY = re.compile(r"([?&](?:host_token|participant_token|ticket)=)[^&]*")
