"""The web edge against other sites: the Host every request names (the DNS-rebinding guard),
and the JSON a write must declare (no cross-site form or ``text/plain`` POST gets through).

A page on evil.example whose name is re-pointed at kernelpad's address is, to the browser, the
same origin as evil.example: its requests come with ``Host: evil.example`` and a matching
``Origin``. Those are refused on every route, sockets included; kernelpad's own names, any IP
address, and the names an operator lists are served.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, make_settings, running_server
from tests.web.clients import hang_up

EVIL = "evil.example"


def port_of(server: RunningServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


async def get_as(server: RunningServer, path: str, host: str) -> tuple[int, dict[str, Any]]:
    response = await server.api.get(path, headers={"Host": host})
    body = json.loads(response.body) if response.body.startswith(b"{") else {}
    return response.status, body


# Every route


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/health",
        "/api/v1/sessions/none",
        "/",
        "/s/none",
        "/docs",
        "/openapi.json",
        "/static/docs/swagger-init.js",
        "/assets/manifest.json",
        "/no/such/path",
    ],
)
async def test_a_host_kernelpad_does_not_serve_is_refused_on_every_route(
    server: RunningServer, path: str
) -> None:
    status, body = await get_as(server, path, f"{EVIL}:{port_of(server)}")
    assert status == 400, (path, status)
    assert body["error"]["code"] == "host_not_allowed"
    assert EVIL in body["error"]["message"]


@pytest.mark.parametrize("socket", ["/ws/sessions/{sid}", "/ws/yjs/{sid}"])
async def test_a_rebound_socket_is_refused_even_with_a_matching_origin(
    server: RunningServer, socket: str
) -> None:
    """The rebinding shape: Host and Origin agree, and both name the attacker's site."""
    session = await server.api.create_session()
    url = server.base_url.replace("http://", "ws://") + socket.format(sid=session["session_id"])
    forged = f"{EVIL}:{port_of(server)}"
    request = HTTPRequest(url, headers={"Host": forged, "Origin": f"http://{forged}"})
    with pytest.raises(HTTPClientError) as refused:
        conn = await websocket_connect(request)
        conn.close()
    assert refused.value.code == 400


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "10.1.2.3", "LOCALHOST."])
async def test_loopback_names_and_addresses_are_served(server: RunningServer, host: str) -> None:
    status, _ = await get_as(server, "/api/v1/health", f"{host}:{port_of(server)}")
    assert status == 200, host


async def test_kernelpads_own_sockets_still_connect(server: RunningServer) -> None:
    session = await server.api.create_session()
    host = f"localhost:{port_of(server)}"
    url = server.base_url.replace("http://", "ws://") + f"/ws/sessions/{session['session_id']}"
    conn = await websocket_connect(
        HTTPRequest(url, headers={"Host": host, "Origin": f"http://{host}"})
    )
    await hang_up(conn)


@pytest.fixture(scope="module")
async def listed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("listed"),
        allowed_hosts=["pad.example.com"],
        frontend_url="https://interviews.example.org/pad",
        kernel_pool_size={},
    )
    async with running_server(settings) as running:
        yield running


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("pad.example.com", 200),
        ("Pad.Example.Com:443", 200),
        ("interviews.example.org", 200),
        ("localhost", 200),
        (EVIL, 400),
        ("example.com", 400),
        ("evil.pad.example.com", 400),
    ],
)
async def test_allowed_hosts_and_the_frontend_url_are_served(
    listed: RunningServer, host: str, status: int
) -> None:
    assert (await get_as(listed, "/api/v1/health", host))[0] == status, host


async def test_a_star_serves_any_host(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, allowed_hosts=["*"], kernel_pool_size={})
    async with running_server(settings) as running:
        assert (await get_as(running, "/api/v1/health", EVIL))[0] == 200


def test_the_hub_s_urls_are_served() -> None:
    from kernelpad.web.hosts import HostCheck

    settings = Settings(_env_file=None, allowed_hosts=["extra.example"])
    check = HostCheck.of(
        settings,
        {
            "JUPYTERHUB_SERVICE_URL": "http://kernelpad-svc:10101",
            "JUPYTERHUB_PUBLIC_URL": "https://hub.example.com/services/kernelpad/",
        },
    )
    for host in ("kernelpad-svc:10101", "hub.example.com", "extra.example", "127.0.0.1:8000"):
        assert check.allows(host), host
    for host in (EVIL, "", "hub.example.com.evil.example", "[::1"):
        assert not check.allows(host), host


def test_a_setting_that_is_not_a_host_name_is_refused() -> None:
    with pytest.raises(ValueError, match="host name"):
        Settings(_env_file=None, allowed_hosts=["https://pad.example.com/"])


# JSON only


async def sessions_active(api: Api) -> int:
    return int((await api.get("/api/v1/health")).json["sessions_active"])


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
async def test_a_cross_site_post_creates_no_session(
    server: RunningServer, content_type: str | None
) -> None:
    """What a form or a ``no-cors`` fetch from another site can send: never JSON."""
    api = server.api
    before = await sessions_active(api)
    # None: no type at all (a fetch of a Blob without one).
    headers = {"Origin": f"http://{EVIL}", "Content-Type": content_type or ""}
    response = await api.post(
        "/api/v1/sessions", body=json.dumps({"host_name": "Mallory"}), headers=headers
    )
    assert response.status == 415, response.body
    assert response.json["error"]["code"] == "unsupported_media_type"
    assert "application/json" in response.json["error"]["message"]
    assert await sessions_active(api) == before


async def test_every_write_with_a_body_needs_json(server: RunningServer) -> None:
    api = server.api
    session = await api.create_session()
    sid, token = session["session_id"], session["host_token"]
    plain = {"Content-Type": "text/plain"}
    writes = [
        ("PUT", f"/api/v1/sessions/{sid}/notes", {"notes": "x"}),
        ("PATCH", f"/api/v1/sessions/{sid}", {"editing_locked": True}),
        ("POST", f"/api/v1/sessions/{sid}/execute", {"code": "1"}),
        ("POST", f"/api/v1/sessions/{sid}/participants", {"display_name": "Eve"}),
    ]
    for method, path, body in writes:
        response = await api.request(
            method, path, body=json.dumps(body), token=token, headers=plain
        )
        assert response.status == 415, (method, path, response.body)
    # JSON, with a charset, is taken.
    response = await api.put(
        f"/api/v1/sessions/{sid}/notes",
        body=json.dumps({"notes": "kept"}),
        token=token,
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )
    assert response.status == 200
    assert (await api.get(f"/api/v1/sessions/{sid}", token=token)).json["editing_locked"] is False
