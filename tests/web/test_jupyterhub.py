"""kernelpad as a JupyterHub service: a real Hub (with configurable-http-proxy from npm) starts
kernelpad from ``examples/jupyterhub_config.py`` and proxies it under ``/services/kernelpad/``.

Interviewers log in through the Hub (OAuth in a real browser; Hub tokens for the API); only Hub
users holding ``access:services!service=kernelpad`` may start interviews; candidates join through
the link, without a Hub account.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests import processes
from tests.conftest import Api, free_port
from tests.web.browser import ARTIFACTS, Person

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "jupyterhub_config.py"
PROXY = ROOT / "examples" / "node_modules" / ".bin" / "configurable-http-proxy"
PREFIX = "/services/kernelpad/"
PASSWORD = "interview-day"
ADMIN_TOKEN = secrets.token_hex(16)

# The example, as a team would use it, plus what a test needs: its own ports and files, a
# login that takes a password (no system users), and an admin service to make users and tokens.
TEST_CONFIG = """
load_subconfig({example!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = {folder!r} + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {folder!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {folder!r} + "/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
kernelpad = c.JupyterHub.services[0]
kernelpad["url"] = "http://127.0.0.1:{kernelpad_port}"
kernelpad["environment"].update(
    KERNELPAD_DATA_DIR={folder!r} + "/kernelpad",
    KERNELPAD_LANGUAGES='["python"]',
    KERNELPAD_KERNEL_POOL_SIZE='{{"python": 1}}',
)
c.JupyterHub.services.append({{"name": "tester", "api_token": {admin_token!r}}})
c.JupyterHub.load_roles.append(
    {{
        "name": "tester",
        "scopes": ["admin:users", "admin:groups", "tokens", "access:services"],
        "services": ["tester"],
    }}
)
c.JupyterHub.load_groups = {{"interviewers": {{"users": ["alice"]}}}}
"""


class Hub:
    """``jupyterhub`` in a child process; it starts kernelpad as its service."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "jupyterhub_config.py"
        config.write_text(
            TEST_CONFIG.format(
                example=str(EXAMPLE),
                port=self.port,
                hub_port=free_port(),
                proxy_api_port=free_port(),
                kernelpad_port=free_port(),
                folder=str(folder),
                password=PASSWORD,
                admin_token=ADMIN_TOKEN,
            )
        )
        self.log = folder / "jupyterhub.log"
        self._log = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=folder,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JUPYTER_PLATFORM_DIRS": "1"},
        )

    def wait_ready(self, timeout: float = 120) -> None:
        """Until kernelpad answers through the Hub's proxy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"JupyterHub exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}{PREFIX}api/v1/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"kernelpad did not come up behind the Hub:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The Hub's REST API, as the test's admin service (blocking: setup only)."""
        request = urllib.request.Request(
            f"{self.url}/hub/api{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {ADMIN_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def token(self, user: str, scopes: list[str] | None = None) -> str:
        body: dict[str, Any] = {"note": "kernelpad test"}
        if scopes is not None:
            body["scopes"] = scopes
        return str(self.api("POST", f"/users/{user}/tokens", body)["token"])

    def stop(self) -> None:
        # The Hub stops its managed services (kernelpad, which stops its kernels) and proxy.
        processes.stop(self.proc, 60)
        self._log.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    assert PROXY.exists(), f"{PROXY} is missing: run 'make test' (it runs 'npm ci' in examples/)"
    started = Hub(tmp_path_factory.mktemp("hub"))
    try:
        started.wait_ready()
        started.api("POST", "/users/bob")
        yield started
    finally:
        started.stop()
    assert "Traceback" not in started.log.read_text(errors="replace"), started.log_tail()


@pytest.fixture(scope="module")
def api(hub: Hub) -> Iterator[Api]:
    client = Api(hub.url + PREFIX.rstrip("/"))
    yield client
    client.close()


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


async def test_a_user_with_the_scope_starts_interviews_as_themself(hub: Hub, api: Api) -> None:
    token = hub.token("alice", ["access:services!service=kernelpad"])
    response = await api.post(
        "/api/v1/sessions",
        {"host_name": "Mallory", "initial_language": "python"},
        headers=token_header(token),
    )
    assert response.status == 201, response.body
    session = response.json
    # The Hub says who the interviewer is, whatever the request claims.
    assert session["host_name"] == "alice"
    # Links and Location are under the Hub's address and the service's prefix.
    assert session["join_url"] == f"{hub.url}{PREFIX}s/{session['session_id']}"
    assert response.headers["Location"] == f"{PREFIX}api/v1/sessions/{session['session_id']}"
    # The API goes on as always, through the Hub's proxy: code runs.
    ran = await api.execute(session["session_id"], "print(6 * 7)")
    assert ran["stdout"] == "42\n"


async def test_no_hub_login_no_interview(api: Api) -> None:
    response = await api.post("/api/v1/sessions", {"host_name": "Eve"})
    assert response.status == 401
    assert response.json["error"]["code"] == "hub_login_required"
    assert "JupyterHub" in response.json["error"]["message"]
    # Nor a look at the questions interviews start from.
    assert (await api.get("/api/v1/questions")).status == 401


async def test_an_interviewer_sees_the_questions(hub: Hub, api: Api) -> None:
    token = hub.token("alice", ["access:services!service=kernelpad"])
    response = await api.get("/api/v1/questions", headers=token_header(token))
    assert response.status == 200
    assert "two-sum" in {q["id"] for q in response.json["questions"]}


@pytest.mark.parametrize(
    ("user", "scopes"),
    [
        # Bob is a Hub user, but not an interviewer: his token has no access to the service.
        ("bob", None),
        # Alice's token made for something else does not carry her access either.
        ("alice", ["read:users:name!user=alice"]),
    ],
)
async def test_a_token_without_the_scope_is_refused(
    hub: Hub, api: Api, user: str, scopes: list[str] | None
) -> None:
    token = hub.token(user, scopes)
    response = await api.post("/api/v1/sessions", {"host_name": user}, headers=token_header(token))
    assert response.status == 403, response.body
    error = response.json["error"]
    assert error["code"] == "hub_scope_missing"
    assert user in error["message"] and "access:services!service=kernelpad" in error["message"]


async def test_reading_and_joining_need_no_hub_login(api: Api) -> None:
    # Health, languages and the docs stay open; so do a session's page and its join.
    for path in ("/api/v1/health", "/api/v1/languages", "/openapi.json"):
        assert (await api.get(path)).status == 200, path
    spec = (await api.get("/openapi.json")).json
    assert spec["servers"] == [{"url": PREFIX.rstrip("/")}]


async def test_in_the_browser_through_the_hub(hub: Hub, browser: Browser) -> None:
    artifacts = ARTIFACTS / "hub"
    artifacts.mkdir(parents=True, exist_ok=True)
    host = await Person.open(browser)
    page = host.page
    # Not logged in: the service sends the browser to the Hub's login, and back after it.
    await page.goto(f"{hub.url}{PREFIX}")
    await expect(page).to_have_url(re.compile(r"/hub/login"))
    await page.locator("#username_input").fill("alice")
    await page.locator("#password_input").fill(PASSWORD)
    await page.locator("#login_submit").click()
    await expect(page).to_have_url(f"{hub.url}{PREFIX}")
    await expect(page.get_by_label("Your name")).to_have_value("alice")
    await expect(page.locator("#hub-user")).to_have_text("Signed in through JupyterHub.")
    await page.get_by_role("button", name="Start the interview").click()
    join_link = await page.locator("#join-link").input_value()
    assert re.fullmatch(re.escape(f"{hub.url}{PREFIX}s/") + r"[\w-]+", join_link), join_link
    await page.get_by_role("link", name="Open the interview").click()
    await expect(page.locator("#connection-status")).to_have_text("Connected")

    # The candidate has no Hub account: the join link is enough.
    candidate = await Person.open(browser)
    await candidate.page.goto(join_link)
    await candidate.page.get_by_label("Your name, as the others will see it").fill("Alan")
    await candidate.page.get_by_role("button", name="Join").click()
    await expect(candidate.page.locator("#connection-status")).to_have_text("Connected")
    await expect(page.get_by_label("Participants")).to_contain_text("Alan")
    await expect(candidate.page.get_by_label("Participants")).to_contain_text("alice (host)")

    # The Hub's login cookie alone does not start an interview: a page elsewhere could make the
    # browser send it. The pad's own requests carry the Hub's XSRF token as well.
    status = await page.evaluate(
        """async (url) => (await fetch(url, {method: "POST", body: '{"host_name": "x"}',
            headers: {"Content-Type": "application/json"}})).status""",
        f"{hub.url}{PREFIX}api/v1/sessions",
    )
    assert status == 401
    host.expected_errors("401")

    # Both sockets and the API work through the proxy: a run shows on both sides.
    await candidate.replace_source(0, "print('through the hub', 6 * 7)")
    await candidate.run(0)
    for person in (host, candidate):
        await expect(person.cell(0).locator(".outputs")).to_contain_text("through the hub 42")
    await page.screenshot(path=artifacts / "pad-interviewer.png")
    await host.close()
    await candidate.close()


async def test_hub_login_without_the_hubs_settings_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("JUPYTERHUB_"):
            monkeypatch.delenv(name)
    result = subprocess.run(
        [sys.executable, "-m", "kernelpad", "--jupyterhub-login", "true", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KERNELPAD_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("kernelpad: JupyterHub login is on"), result.stderr
    assert "JUPYTERHUB_CLIENT_ID" in message


async def test_the_hub_refuses_a_user_without_the_scope_at_login(
    hub: Hub, browser: Browser
) -> None:
    bob = await Person.open(browser)
    page = bob.page
    await page.goto(f"{hub.url}{PREFIX}")
    await page.locator("#username_input").fill("bob")
    await page.locator("#password_input").fill(PASSWORD)
    response_codes: list[int] = []
    page.on("response", lambda response: response_codes.append(response.status))
    await page.locator("#login_submit").click()
    await expect(page.locator("body")).to_contain_text(re.compile("403|not allowed|permission"))
    assert 403 in response_codes
    assert not page.url.startswith(f"{hub.url}{PREFIX}")
    bob.expected_errors("403")
    await bob.close()
