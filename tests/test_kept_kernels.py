"""Local kernels outlive their server: a restart, a SIGTERM with kernels kept, and a ``kill -9``
are each followed by a run that sees the old variables, in Python and C++. Kernels nobody takes
back go after the grace period, with their folders and cgroups."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from kernelpad.kernels.cgroups import Cgroups
from kernelpad.kernels.runtime import PREFIX, remove_tree
from tests.conftest import Api, ServerProcess, eventually, gone
from tests.web.clients import JsonClient

# (language, code that sets x, code that shows x, what it shows, code that runs a long time)
LANGUAGES = {
    "python": (
        "x = 41",
        "x + 1",
        "42",
        "import time\nprint('started', flush=True)\ntime.sleep(60)",
    ),
    "cpp": (
        "int x = 41;",
        'std::cout << x + 1 << "\\n";',
        "42",
        "#include <thread>\n"
        'std::cout << "started" << std::endl;\n'
        "std::this_thread::sleep_for(std::chrono::seconds(60));",
    ),
}


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A runtime folder of the test's own (short: Unix sockets' paths are), so that what it
    counts is only its servers' kernels."""
    parent = Path(tempfile.mkdtemp(prefix="kp-"))
    yield parent / f"{PREFIX}0"
    for process in kernel_processes(parent):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    remove_tree(parent)


def kernel_processes(runtime: Path) -> list[psutil.Process]:
    """Every process on the machine whose command line names the runtime folder (or one
    kernel's folder): keepers, sandboxes, relays, kernels."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if str(runtime) in " ".join(process.info["cmdline"] or []) and not gone(process.pid):
            found.append(process)
    return found


def start(server_process: Any, data: Path, runtime: Path, *flags: str) -> ServerProcess:
    server: ServerProcess = server_process(
        data,
        "--kernel-runtime-dir",
        str(runtime.parent),
        "--kernel-pool-size",
        '{"python": 1, "cpp": 0}',
        *flags,
    )
    return server


async def until_printed(client: JsonClient, what: str) -> None:
    """Until the run in progress printed ``what``."""
    while what not in str((await client.expect("output"))["output"].get("text", "")):
        pass


@pytest.mark.parametrize("language", ["python", "cpp"])
# kill -9: a crash; SIGTERM: a service manager's restart; SIGINT: Ctrl+C on `make run`.
@pytest.mark.parametrize("how", ["kill -9", "SIGTERM", "SIGINT"])
async def test_the_next_server_takes_the_kernel_back(
    server_process: Any, tmp_path: Path, runtime_dir: Path, language: str, how: str
) -> None:
    set_x, show_x, shown, long_run = LANGUAGES[language]
    data = tmp_path / "data"
    first = start(
        server_process,
        data,
        runtime_dir,
        "--kernels-on-exit",
        "keep",
        "--code-execution-timeout",
        "120",
    )
    api = Api(first.base_url)
    created = await api.create_session(initial_language=language)
    sid, token = created["session_id"], created["host_token"]
    assert (await api.execute(sid, set_x))["status"] == "ok"
    count = (await api.execute(sid, show_x))["execution_count"]
    # A run in flight as the server goes, watched by a participant (its cell then says so).
    notebook = (await api.get(f"/api/v1/sessions/{sid}/notebook.ipynb", token=token)).json
    cell_id = notebook["cells"][0]["id"]
    client, _ = await JsonClient.join_with(first, sid, "grace-1", "Grace", token)
    await client.send("execute", {"code": long_run, "cell_id": cell_id})
    await until_printed(client, "started")
    api.close()
    if how == "kill -9":
        first.proc.kill()
        first.wait()
    else:
        first.proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
        assert first.wait() == 0
        assert "kernels kept for the next server" in first.log.read_text()
    client.close()
    kept = [p.pid for p in kernel_processes(runtime_dir)]
    assert kept, "the session's kernel went with its server"

    second = start(server_process, data, runtime_dir)
    api = Api(second.base_url)
    # The participant's page reconnects (to the next server).
    client, _ = await JsonClient.join_with(second, sid, "grace-1", "Grace", token)
    try:
        body = await api.execute(sid, show_x)
        # The run the first server left was interrupted when its kernel was taken back: this
        # one did not wait out its sleep (60 s, against the test's time-out).
        assert body["status"] == "ok", (body["error"], body["notices"])
        assert shown in (body["stdout"] or body["outputs"][0]["data"]["text/plain"])
        assert body["new_kernel"] is False
        assert not any("variables" in notice for notice in body["notices"]), body["notices"]
        # One count for the interrupted run, one for this.
        assert body["execution_count"] in (count + 1, count + 2)
        notebook = (await api.get(f"/api/v1/sessions/{sid}/notebook.ipynb", token=token)).json
        said = "".join(
            "".join(output.get("text", ""))
            for cell in notebook["cells"]
            for output in cell.get("outputs", [])
        )
        # What the participant saw before the server went is there, and why it ends there.
        assert "started" in said
        if how == "kill -9":
            assert "the server restarted while it ran" in said, said
        else:
            # A stopping server stopped the run first, as a person would: it says so.
            runs = (await api.get(f"/api/v1/sessions/{sid}/executions", token=token)).json
            stopped = runs["executions"][-2]
            assert stopped["code"] == long_run and stopped["state_kept"] is True, stopped
            assert any("kernelpad is restarting" in notice for notice in stopped["notices"])
    finally:
        api.close()
        await client.aclose()
    assert f"took its {language} kernel" in second.log.read_text()


async def test_a_restarted_server_drives_the_kernel_it_took_back(
    server_process: Any, tmp_path: Path, runtime_dir: Path
) -> None:
    """Interrupts, time limits, restarts and culling work on a kernel taken back."""
    data = tmp_path / "data"
    flags = ("--code-execution-timeout", "3", "--kernel-idle-timeout", "6", "--cull-interval", "1")
    first = start(server_process, data, runtime_dir, *flags)
    api = Api(first.base_url)
    created = await api.create_session()
    sid, token = created["session_id"], created["host_token"]
    await api.execute(sid, "x = 41")
    api.close()
    first.proc.kill()
    first.wait()

    second = start(server_process, data, runtime_dir, *flags)
    api = Api(second.base_url)
    try:
        # A time limit, enforced by an interrupt: the variables stay.
        body = await api.execute(sid, "while True: pass")
        assert body["timed_out"] is True and body["state_kept"] is True, body
        assert (await api.execute(sid, "x"))["outputs"][0]["data"]["text/plain"] == "41"
        # An interrupt from a participant.
        client, _ = await JsonClient.join_with(second, sid, "grace-1", "Grace", token)
        await client.send("execute", {"code": "import time; time.sleep(30)"})
        await client.expect("execution_started")
        await asyncio.sleep(0.5)
        await client.send("interrupt", {})
        finished = await client.expect("execution_finished")
        assert finished["status"] == "error" and finished["state_kept"] is True, finished
        # A restart: a new kernel, and the one taken back is gone with its folder.
        folder = runtime_dir / session_kernel(data, sid)[:12]
        before = {p.pid for p in kernel_processes(folder)}
        await client.send("restart_kernel", {})
        while (await client.expect("kernel_status"))["state"] != "idle":
            pass
        body = await api.execute(sid, "x")
        assert body["error"]["ename"] == "NameError"
        assert before
        await eventually(
            lambda: not before & {p.pid for p in kernel_processes(folder)}, "the old kernel to go"
        )
        assert not folder.exists()
        await client.aclose()
        # Culling: idle past its timeout, the kernel goes.
        await api.execute(sid, "y = 1")
        assert await _session_kernels(api) == 1
        await eventually(lambda: _no_session_kernel(api), "the idle kernel to be culled", 30)
    finally:
        api.close()


def session_kernel(data: Path, session_id: str) -> str:
    """The id of the session's kernel, as its server stored it."""
    with contextlib.closing(sqlite3.connect(data / "kernelpad.sqlite")) as db:
        (kernel_id,) = db.execute(
            "SELECT kernel_id FROM session_kernels WHERE session_id = ?", (session_id,)
        ).fetchone()
    return str(kernel_id)


async def _session_kernels(api: Api) -> int:
    return int((await api.get("/api/v1/health")).json["kernels_running"])


async def _no_session_kernel(api: Api) -> bool:
    return await _session_kernels(api) == 0


async def test_kernels_nobody_takes_back_are_stopped_after_the_grace_period(
    server_process: Any, tmp_path: Path, runtime_dir: Path
) -> None:
    """A server is killed and none comes back: the pooled kernel goes at once (it held nobody's
    variables), the session's after the grace period, each with its folder, lease and cgroup:
    the keeper does it, no server."""
    server = start(server_process, tmp_path / "data", runtime_dir, "--kernel-reattach-grace", "4")
    api = Api(server.base_url)
    try:
        sid = (await api.create_session())["session_id"]
        await api.execute(sid, "x = 1")
        await eventually(
            lambda: len(list(runtime_dir.glob("*.lease"))) == 2, "the pool to refill", 60
        )
    finally:
        api.close()
    leases = sorted(runtime_dir.glob("*.lease"))
    folders = [lease.with_suffix("") for lease in leases]
    cgroups = Cgroups.find()
    assert cgroups is not None, "this machine has no cgroups for kernels"
    assert all(cgroups.memory.joinpath(f.name).exists() for f in folders)
    server.proc.kill()
    server.wait()
    # The pooled kernel went at once; the session's stays for now.
    await eventually(lambda: len(list(runtime_dir.glob("*.lease"))) == 1, "the pooled kernel")
    assert kernel_processes(runtime_dir)
    await eventually(lambda: not kernel_processes(runtime_dir), "the session's kernel", 30)
    assert list(runtime_dir.iterdir()) == []
    assert not any(cgroups.memory.joinpath(f.name).exists() for f in folders)
