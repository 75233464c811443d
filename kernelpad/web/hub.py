"""kernelpad as a JupyterHub service: interviewers log in through the Hub.

When the Hub starts kernelpad (or an operator gives it a service's environment:
``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_API_URL``,
``JUPYTERHUB_SERVICE_PREFIX``), starting an interview needs a Hub user allowed to use the service:
one holding the scope ``access:services!service=<name>``. Browsers log in by OAuth
(``jupyterhub.services.auth.HubOAuth``); API clients send a Hub token
(``Authorization: token ...``). The interviewer's name then comes from the Hub.

Candidates do not log in: the join link stays their way in, as without the Hub, since the people
being interviewed are rarely users of the company's Hub.
"""

from __future__ import annotations

import logging
import os
from typing import Any, TypeVar

import tornado.web
from jupyterhub.services.auth import (
    HubOAuth,
    HubOAuthCallbackHandler,
    HubOAuthenticated,
    UserNotAllowed,
)
from tornado.escape import xhtml_escape

from kernelpad.config import Settings
from kernelpad.web.base import ApiError, ApiHandler

log = logging.getLogger(__name__)

H = TypeVar("H", bound=tornado.web.RequestHandler)


class HubNotConfigured(RuntimeError):
    """JupyterHub login is on, but the Hub's service environment is incomplete."""


def hub_auth(settings: Settings) -> HubOAuth | None:
    """The Hub's OAuth client for this service, or None when Hub login is off."""
    if not settings.jupyterhub_login:
        return None
    try:
        auth = HubOAuth(base_url=settings.base_url)
    except Exception as exc:  # traitlets says which trait, not which variable: say both
        raise HubNotConfigured(
            "JupyterHub login is on (JUPYTERHUB_API_TOKEN or KERNELPAD_JUPYTERHUB_LOGIN) but"
            f" the Hub's service settings are incomplete: {exc}. A Hub-managed service gets"
            " them from the Hub; an external one needs JUPYTERHUB_API_TOKEN,"
            " JUPYTERHUB_CLIENT_ID, JUPYTERHUB_API_URL and JUPYTERHUB_SERVICE_PREFIX."
        ) from exc
    missing = [
        name
        for name, value in (
            ("JUPYTERHUB_API_TOKEN", auth.api_token),
            ("JUPYTERHUB_CLIENT_ID", auth.oauth_client_id),
            ("JUPYTERHUB_API_URL", os.environ.get("JUPYTERHUB_API_URL")),
            ("JUPYTERHUB_SERVICE_NAME (or JUPYTERHUB_OAUTH_ACCESS_SCOPES)", auth.access_scopes),
            # A Hub service is always under a prefix (/services/<name>/) of the Hub's proxy.
            ("JUPYTERHUB_SERVICE_PREFIX (or KERNELPAD_BASE_URL)", settings.base_url != "/"),
        )
        if not value
    ]
    if missing:
        raise HubNotConfigured(
            "JupyterHub login is on (JUPYTERHUB_API_TOKEN or KERNELPAD_JUPYTERHUB_LOGIN), but"
            f" the Hub's service settings lack {', '.join(missing)}. A Hub-managed service gets"
            " them from the Hub; an external one is given them by its operator."
        )
    log.info(
        "interviewers log in through JupyterHub at %s (scope %s)",
        auth.hub_host + auth.hub_prefix,
        " or ".join(sorted(auth.access_scopes)),
    )
    return auth


class _AppHubAuth:
    """jupyterhub's handlers find their ``hub_auth`` here: the application's one client."""

    settings: dict[str, Any]

    @property
    def hub_auth(self) -> HubOAuth:
        auth: HubOAuth = self.settings["hub_auth"]
        return auth

    @hub_auth.setter
    def hub_auth(self, auth: HubOAuth) -> None:
        raise AttributeError("the Hub client comes from the application's settings")


class HubLogin(_AppHubAuth, HubOAuthenticated):  # type: ignore[misc]
    """Mixed into a handler by :func:`hub_login`: its ``login_methods`` need a Hub user.

    The user is looked up once, asynchronously, in ``prepare``; jupyterhub's own mixin would
    otherwise ask the Hub from ``get_current_user``, blocking the event loop on a thread.
    """

    login_methods: frozenset[str] = frozenset()

    def get_current_user(self) -> dict[str, Any] | None:
        user: dict[str, Any] | None = getattr(self, "_hub_auth_user_cache", None)
        return user

    async def prepare(self) -> None:
        await _maybe_await(super().prepare())
        if self._finished or self.request.method not in self.login_methods:
            return
        model = await self.hub_auth.get_user(self, sync=False)
        self._hub_auth_user_cache = None
        if model is None:
            self.login()
            return
        try:
            self._hub_auth_user_cache = self.check_hub_user(model)
        except UserNotAllowed:
            self.refuse(model)

    def login(self) -> None:
        """No Hub user: send a browser to the Hub's login (pages) or answer 401 (the API)."""
        self.redirect(self.get_login_url())

    def refuse(self, model: dict[str, Any]) -> None:
        """A Hub user without the service's scope: say so, and how it is granted."""
        self.set_status(403)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        scopes = " or ".join(sorted(self.hub_auth.access_scopes))
        self.finish(
            "<!doctype html><title>kernelpad</title><p>The JupyterHub user"
            f" <b>{xhtml_escape(model['name'])}</b> may not start interviews here: the Hub has"
            f" not given them the scope <code>{xhtml_escape(scopes)}</code>. Ask a Hub admin"
            " for it.</p>"
        )


class HubApiLogin(HubLogin):
    """:class:`HubLogin` for API handlers: JSON errors instead of redirects."""

    def login(self) -> None:
        raise ApiError(
            401,
            "hub_login_required",
            "This kernelpad runs as a JupyterHub service: log in through the Hub, or send a"
            " Hub token ('Authorization: token <token>') of a user who may use the service.",
        )

    def refuse(self, model: dict[str, Any]) -> None:
        scopes = " or ".join(sorted(self.hub_auth.access_scopes))
        raise ApiError(
            403,
            "hub_scope_missing",
            f"The Hub {model.get('kind', 'user')} {model['name']!r} may not use this service:"
            f" their token lacks the scope {scopes}. A Hub admin grants it with a role"
            " (load_roles in jupyterhub_config.py).",
        )


def hub_login(handler: type[H], *methods: str) -> type[H]:
    """``handler``, with ``methods`` needing a Hub user (under the same name, for logs)."""
    mixin = HubApiLogin if issubclass(handler, ApiHandler) else HubLogin
    return type(
        handler.__name__,
        (mixin, handler),
        {"login_methods": frozenset(methods), "__doc__": handler.__doc__},
    )


class OAuthCallback(_AppHubAuth, HubOAuthCallbackHandler):  # type: ignore[misc]
    """``{base_url}oauth_callback``: the Hub sends the browser back here after login."""

    def get_current_user(self) -> None:
        # Asked only for a stale login state; jupyterhub would ask the Hub on a blocking
        # thread. The browser then simply logs in again.
        return None


async def _maybe_await(value: Any) -> None:
    if value is not None:
        await value
