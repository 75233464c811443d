"""kernelpad with its kernels on a real Jupyter Kernel Gateway, started by the tests on
loopback: the same sessions, limits, interrupts and restarts as with local kernels."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernelpad.config import Settings
from kernelpad.kernel_gateway.kernel import GatewayKernel
from tests import processes
from tests.conftest import (
    Api,
    RunningServer,
    eventually,
    free_port,
    make_settings,
    running_server,
)
from tests.web.clients import JsonClient

TOKEN = "gateway-test-token"


class Gateway:
    """``jupyter kernelgateway`` in a child process."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "gateway.log"
        self._log = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=self.environment()
        )

    def environment(self) -> dict[str, str]:
        return {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("jupyter-kernelgateway")),
            f"--KernelGatewayApp.port={self.port}",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.auth_token={TOKEN}",
        ]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(
            f"{self.url}/api/kernelspecs", headers={"Authorization": f"token {TOKEN}"}
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(self.log.read_text())
            try:
                with urllib.request.urlopen(request, timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the gateway did not start: {self.log.read_text()}")

    def stop(self) -> None:
        processes.stop(self.proc, 20)
        self._log.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    started = Gateway(tmp_path_factory.mktemp("gateway"))
    started.wait_ready()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1},
        gateway_url=gateway.url,
        gateway_auth_token=TOKEN,
        interrupt_grace=2.0,
    )


@pytest.fixture
async def session(api: Api) -> str:
    return str((await api.create_session())["session_id"])


async def test_the_gateways_kernelspecs_are_the_languages(api: Api) -> None:
    languages = {
        item["id"]: item for item in (await api.get("/api/v1/languages")).json["languages"]
    }
    assert languages["python"]["available"] and languages["javascript"]["available"]
    health = (await api.get("/api/v1/health")).json
    assert health["sandbox"] is False  # the gateway's kernels are the gateway's to contain


async def test_runs_keep_state_and_stream_like_local_kernels(api: Api, session: str) -> None:
    await api.execute(session, "x = 41")
    body = await api.execute(session, "import sys\nprint(x + 1)\nprint('e', file=sys.stderr)\nx")
    assert body["status"] == "ok" and body["stdout"] == "42\n" and body["stderr"] == "e\n"
    assert body["outputs"][-1]["data"]["text/plain"] == "41"
    asked = await api.execute(session, "name = input('Name? ')\nprint('hi', name)", stdin=["Ada"])
    assert "hi Ada" in asked["stdout"]
    failed = await api.execute(session, "1/0")
    assert failed["status"] == "error" and failed["error"]["ename"] == "ZeroDivisionError"


async def test_a_time_limit_interrupts_through_the_gateway(api: Api, session: str) -> None:
    await api.execute(session, "kept = 'yes'")
    body = await api.execute(session, "while True:\n    pass", time_limit=1000)
    assert body["timed_out"] and body["state_kept"], body
    assert (await api.execute(session, "print(kept)"))["stdout"] == "yes\n"


async def test_a_restart_gives_a_new_kernel(api: Api, session: str, server: RunningServer) -> None:
    await api.execute(session, "gone = 1")
    await server.manager.runs.restart_kernel(session, "host", "python")
    body = await api.execute(session, "gone")
    assert body["status"] == "error" and body["error"]["ename"] == "NameError"


async def test_a_community_kernel_through_the_gateway(api: Api, session: str) -> None:
    await api.execute(session, "let n = 6;", language="javascript")
    body = await api.execute(session, "console.log(n * 7)", language="javascript")
    assert body["stdout"] == "42\n", body


async def test_grading_runs_in_kernels_of_its_own_on_the_gateway(api: Api) -> None:
    """The host's Grade starts its own kernels where the session's run: on the gateway."""
    created = await api.create_session(question_id="two-sum")
    sid, token = created["session_id"], created["host_token"]
    await api.execute(sid, "live = 'untouched'")
    graded = await api.post(f"/api/v1/sessions/{sid}/grades", token=token)
    assert graded.status == 201, graded.body
    # The stub raises NotImplementedError: every test fails, each said why.
    assert graded.json["score"] == 0 and graded.json["max_score"] == 3
    assert all("NotImplementedError" in r["error"] for r in graded.json["results"])
    # The live kernel's state is as it was: grading did not run there.
    assert (await api.execute(sid, "print(live)"))["stdout"] == "untouched\n"


@pytest.mark.parametrize("on_exit", ["keep", "stop"])
async def test_a_restart_takes_the_gateways_kernels_back_if_kept(
    tmp_path: Path, gateway: Gateway, on_exit: str
) -> None:
    """With KERNELS_ON_EXIT=keep a stopping server leaves its sessions' kernels on the gateway,
    and the next server takes them back: the variables are there, the count goes on, nobody
    is told of a new kernel. With stop (the default) the next run has a new kernel, and says so."""
    settings = make_settings(
        tmp_path / "data",
        kernel_pool_size={"python": 0},
        gateway_url=gateway.url,
        gateway_auth_token=TOKEN,
        kernels_on_exit=on_exit,
    )
    async with running_server(settings) as first:
        sid = (await first.api.create_session())["session_id"]
        before = await first.api.execute(sid, "x = 41")
    async with running_server(settings) as second:
        # A page that joins sees the kernel it had: taken back as the session opens here.
        page, state = await JsonClient.join(second, sid, "c-page", "Ada")
        assert state["kernels"] == ({"python": "idle"} if on_exit == "keep" else {})
        await page.aclose()
        after = await second.api.execute(sid, "print(x + 1)")
        if on_exit == "keep":
            assert after["stdout"] == "42\n", after
            assert not after["new_kernel"] and after["notices"] == []
            assert after["execution_count"] == before["execution_count"] + 1
        else:
            assert after["status"] == "error" and after["error"]["ename"] == "NameError"
            assert after["new_kernel"] and "started a new Python" in after["notices"][0]
        # The session's end stops the kernel on the gateway, and nothing is kept for it.
        await second.manager.runs.close_session(sid)
        assert await second.manager.store.session_kernels() == []


async def test_a_gateway_that_goes_away_mid_session(
    tmp_path: Path,
) -> None:
    gateway = Gateway(tmp_path)
    gateway.wait_ready()
    settings = make_settings(
        tmp_path / "data",
        kernel_pool_size={"python": 0},
        gateway_url=gateway.url,
        gateway_auth_token=TOKEN,
    )
    try:
        await _run_while_the_gateway_goes(settings, gateway)
    finally:
        gateway.stop()


async def _run_while_the_gateway_goes(settings: Settings, gateway: Gateway) -> None:
    async with running_server(settings) as running:
        sid = (await running.api.create_session())["session_id"]
        assert (await running.api.execute(sid, "print(1)"))["stdout"] == "1\n"
        await asyncio.to_thread(gateway.stop)
        response = await running.api.post(
            f"/api/v1/sessions/{sid}/execute", {"code": "print(2)", "time_limit": 3000}
        )
        # The run ends with a clear status, and the server goes on.
        body: Any = response.json
        if response.status == 200:
            assert body["status"] in ("kernel_died", "timeout", "error"), body
        else:
            assert response.status == 503 and body["error"]["code"] in (
                "gateway_unavailable",
                "kernel_start_failed",
            ), body
        assert (await running.api.get("/api/v1/health")).json["status"] == "ok"


async def test_a_kernel_the_gateway_culled_is_replaced_and_said(
    api: Api, session: str, gateway: Gateway, server: RunningServer
) -> None:
    await api.execute(session, "y = 1")
    # The gateway drops the kernel (as its idle culler does).
    (kernel_id,) = [
        runner.kernel.kernel_id
        for (sid, _), runner in server.manager.runs.runners().items()
        if sid == session and runner.kernel is not None
    ]
    request = urllib.request.Request(
        f"{gateway.url}/api/kernels/{kernel_id}",
        method="DELETE",
        headers={"Authorization": f"token {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    kernel = server.manager.runs.runners()[(session, "python")].kernel
    assert kernel is not None
    await eventually(lambda: _gone(kernel), "kernelpad to notice the kernel is gone")
    body = await api.execute(session, "print('again')")
    assert body["stdout"] == "again\n" and body["new_kernel"], body
    assert any("variables from earlier runs are gone" in n for n in body["notices"]), body


async def _gone(kernel: Any) -> bool:
    return not await kernel.is_alive()


class JupyterServer(Gateway):
    """A plain ``jupyter server``: the same kernels API as a Kernel Gateway."""

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("jupyter-server")),
            f"--ServerApp.port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.open_browser=False",
            "--allow-root",  # the test machine runs as root, as CI's does
            f"--ServerApp.root_dir={self.log.parent}",
        ]


async def test_kernels_on_a_plain_jupyter_server(tmp_path: Path) -> None:
    jupyter = JupyterServer(tmp_path)
    jupyter.wait_ready()
    try:
        settings = make_settings(
            tmp_path / "data",
            kernel_pool_size={"python": 0},
            gateway_url=jupyter.url,
            gateway_auth_token=TOKEN,
        )
        async with running_server(settings) as running:
            sid = (await running.api.create_session())["session_id"]
            await running.api.execute(sid, "z = 20")
            assert (await running.api.execute(sid, "print(z + 1)"))["stdout"] == "21\n"
            body = await running.api.execute(sid, "while True:\n    pass", time_limit=1000)
            assert body["timed_out"] and body["state_kept"], body
    finally:
        jupyter.stop()


async def test_a_dropped_channels_socket_is_made_again_mid_run(
    api: Api, session: str, server: RunningServer
) -> None:
    await api.execute(session, "import time")
    kernel = server.manager.runs.runners()[(session, "python")].kernel
    assert isinstance(kernel, GatewayKernel)
    run = asyncio.ensure_future(
        api.execute(session, "print('before', flush=True)\ntime.sleep(1.5)\nprint('after')")
    )
    await asyncio.sleep(0.5)
    socket = kernel._socket
    assert socket is not None
    socket.close()  # the network between kernelpad and the gateway blips
    body = await run
    # The run ends normally, its reply and later output arrive, and it says what may be lost.
    assert body["status"] == "ok" and "after" in body["stdout"], body
    assert "may be missing" in body["stderr"], body


def test_a_gateway_that_never_answers_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "kernelpad", "--port", "0", "--data-dir", str(tmp_path)]
        + ["--gateway-url", url, "--gateway-connect-timeout", "1", "--startup-wait", "1.5"],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "JUPYTER_PLATFORM_DIRS": "1"},
    )
    assert result.returncode == 1, result.stderr
    # Tried again a while first (the gateway may be starting along with kernelpad), then said so.
    assert result.stderr.count("trying again in") == 2  # after 0.5 s and 1 s: 1.5 s in all
    assert result.stderr.strip().splitlines()[-1].startswith("kernelpad: ")
    assert url in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
