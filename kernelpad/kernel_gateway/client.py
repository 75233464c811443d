"""The Jupyter Server kernels REST API, as a Kernel Gateway, an Enterprise Gateway or any Jupyter
Server (a JupyterHub single-user server among them) offers it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from kernelpad.errors import KernelStartFailed


class GatewayUnavailable(KernelStartFailed):
    """The gateway cannot be reached, or answered with an error."""

    code = "gateway_unavailable"


@dataclass
class GatewaySettings:
    """Where the gateway is and how to talk to it (names as jupyter_server's GatewayClient)."""

    url: str
    auth_token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    request_timeout: float = 60.0
    connect_timeout: float = 10.0
    validate_cert: bool = True
    #: Sent as the kernel's environment: Enterprise Gateway wants KERNEL_USERNAME, and refuses
    #: to start kernels for root.
    kernel_env: dict[str, str] = field(default_factory=dict)


class GatewayClient:
    """REST calls to a gateway's ``/api/kernelspecs`` and ``/api/kernels``."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self._http = AsyncHTTPClient(force_instance=True)

    def headers(self) -> dict[str, str]:
        headers = dict(self.settings.headers)
        if self.settings.auth_token:
            headers["Authorization"] = f"token {self.settings.auth_token}"
        return headers

    def websocket_request(self, kernel_id: str, session_id: str) -> HTTPRequest:
        """The request that opens a kernel's channels WebSocket (``session_id``: the same on
        every connection of one client)."""
        url = (
            self.base.replace("http", "ws", 1)
            + f"/api/kernels/{quote(kernel_id)}/channels?session_id={quote(session_id)}"
        )
        return HTTPRequest(
            url,
            headers=self.headers(),
            connect_timeout=self.settings.connect_timeout,
            request_timeout=self.settings.request_timeout,
            validate_cert=self.settings.validate_cert,
        )

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        request = HTTPRequest(
            self.base + path,
            method=method,
            headers={**self.headers(), "Content-Type": "application/json"},
            body=None if body is None and method != "POST" else json.dumps(body or {}),
            connect_timeout=self.settings.connect_timeout,
            request_timeout=self.settings.request_timeout,
            validate_cert=self.settings.validate_cert,
        )
        try:
            response = await self._http.fetch(request)
        except HTTPClientError as exc:
            detail = exc.response.body.decode(errors="replace")[:300] if exc.response else ""
            raise GatewayUnavailable(
                f"The kernel gateway at {self.base} answered {method} {path} with {exc.code}:"
                f" {detail or exc.message}"
            ) from exc
        except OSError as exc:
            raise GatewayUnavailable(
                f"The kernel gateway at {self.base} cannot be reached ({exc})."
            ) from exc
        try:
            return json.loads(response.body) if response.body else None
        except ValueError as exc:
            raise GatewayUnavailable(
                f"The kernel gateway at {self.base} answered {method} {path} with something"
                " other than JSON (a proxy's login page?)."
            ) from exc

    async def kernelspecs(self) -> dict[str, Any]:
        """The gateway's kernelspecs by name, each as ``kernel.json`` has it."""
        answer = await self.call("GET", "/api/kernelspecs")
        specs = answer.get("kernelspecs", {}) if isinstance(answer, dict) else {}
        return {name: item.get("spec", {}) for name, item in specs.items()}

    async def start(self, kernel_name: str) -> str:
        body = {"name": kernel_name, "env": self.settings.kernel_env}
        answer = await self.call("POST", "/api/kernels", body)
        return str(answer["id"])

    async def interrupt(self, kernel_id: str) -> None:
        await self.call("POST", f"/api/kernels/{quote(kernel_id)}/interrupt")

    async def exists(self, kernel_id: str) -> bool | None:
        """Whether the gateway has the kernel; None if it did not say (an error, a time-out)."""
        try:
            await self.call("GET", f"/api/kernels/{quote(kernel_id)}")
        except GatewayUnavailable as exc:
            cause = exc.__cause__
            return False if isinstance(cause, HTTPClientError) and cause.code == 404 else None
        return True

    async def delete(self, kernel_id: str) -> None:
        await self.call("DELETE", f"/api/kernels/{quote(kernel_id)}")

    def close(self) -> None:
        self._http.close()
