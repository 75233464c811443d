"""The Host every request must name: kernelpad's guard against DNS rebinding.

A page on evil.example whose name the attacker then re-points at kernelpad's address (127.0.0.1,
an intranet address) is, to the browser, still evil.example: its requests reach kernelpad with
``Host: evil.example`` and a matching ``Origin``, so neither CORS nor the WebSocket origin check
(both compare the Origin with the Host) stops them. What such a page cannot do is name one of
kernelpad's own hosts. So every request, whatever its route (the API, the pages, the docs, the
assets, both sockets), is checked here before it is routed, and one naming another host gets a
400.

Served without being listed: ``localhost``; any IP address (an address cannot be re-pointed: a
browser that names one is talking to whatever is there, kernelpad itself); the address
kernelpad listens on; the hosts of the public URLs it is told of (FRONTEND_URL, and as a
JupyterHub service the Hub's JUPYTERHUB_SERVICE_URL, JUPYTERHUB_PUBLIC_URL and
JUPYTERHUB_PUBLIC_HUB_URL). ALLOWED_HOSTS adds names; ``*`` there serves any host.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import tornado.httputil
import tornado.web

from kernelpad.config import Settings
from kernelpad.logs import about
from kernelpad.web.base import ApiHandler
from kernelpad.web.schemas import ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)

#: The environment's URLs whose hosts are kernelpad's own (a Hub passes them to its services).
HUB_URLS = ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_PUBLIC_HUB_URL")

# The session a path is about, for the log: /api/v1/sessions/{id}, /ws/yjs/{id}, /s/{id}, ...
_SESSION_IN_PATH = re.compile(r"/(?:api/v1/sessions|ws/yjs|ws/sessions|s)/([^/?]+)")


def host_name(host: str) -> str:
    """The name in a Host header: lower-cased, without its port or a final dot."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 address, [::1]:8000
        end = host.find("]")
        return host[: end + 1] if end > 0 else ""
    return host.rsplit(":", 1)[0].rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostCheck:
    """The host names kernelpad serves (IP addresses are always served)."""

    names: frozenset[str]
    any_host: bool = False

    @classmethod
    def of(cls, settings: Settings, environ: Mapping[str, str]) -> HostCheck:
        """The hosts ``settings`` and the environment (a Hub's URLs) make kernelpad's own."""
        urls = [settings.frontend_url or "", *(environ.get(name, "") for name in HUB_URLS)]
        names = {"localhost", host_name(settings.host)}
        names.update(host_name(urlsplit(url).netloc.rpartition("@")[2]) for url in urls if url)
        names.update(host_name(name) for name in settings.allowed_hosts)
        names.discard("")
        return cls(frozenset(names), "*" in settings.allowed_hosts)

    def allows(self, host: str) -> bool:
        if self.any_host:
            return True
        name = host_name(host)
        return bool(name) and (name in self.names or _is_address(name))


class HostCheckingApplication(tornado.web.Application):
    """The application, checking each request's Host before it is routed: no route (a socket,
    an asset, a route added later) can be reached past the check."""

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        check: HostCheck = self.settings["hosts"]
        if not check.allows(request.host):
            return self.get_handler_delegate(request, HostRefused)
        return super().find_handler(request, **kwargs)


class HostRefused(ApiHandler):
    """The answer to a request naming a host kernelpad does not serve."""

    def prepare(self) -> None:
        request = self.request
        session = _SESSION_IN_PATH.search(request.path)
        log.warning(
            "refused a request for the host %r (%s %s from %s, Origin %r): not a host kernelpad"
            " serves. If it is one (a proxy's public name), add it to ALLOWED_HOSTS"
            " (KERNELPAD_ALLOWED_HOSTS) or set FRONTEND_URL.",
            request.host,
            request.method,
            request.path,
            request.remote_ip,
            request.headers.get("Origin", ""),
            extra=about(session.group(1)) if session else None,
        )
        self.set_status(400)
        message = f"This server does not answer to the host name {host_name(request.host)!r}."
        error = ErrorDetail(code="host_not_allowed", message=message)
        self.finish(ErrorResponse(error=error).model_dump_json(exclude_none=True))
