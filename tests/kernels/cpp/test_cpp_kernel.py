"""The C++ kernel with the real clang-repl: through kernelpad's execute API as a user meets it,
and its Jupyter protocol replies through jupyter_client."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest
from jupyter_client.manager import AsyncKernelManager

from kernelpad.config import Settings
from tests.conftest import Api, eventually, gone, make_settings


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"cpp": 1},
        code_execution_timeout=10,
        interrupt_grace=5,
    )


@pytest.fixture(scope="module")
async def sid(api: Api) -> str:
    """One C++ session shared by the tests that build on each other's definitions."""
    return (await api.create_session(initial_language="cpp"))["session_id"]


def value(body: dict[str, Any]) -> str | None:
    results = [o for o in body["outputs"] if o["output_type"] == "execute_result"]
    return results[-1]["data"]["text/plain"] if results else None


async def test_definitions_persist_across_cells(api: Api, sid: str) -> None:
    first = await api.execute(sid, "#include <iostream>\nint twice(int n) {\n    return 2 * n;\n}")
    assert first["status"] == "ok", first
    second = await api.execute(sid, "std::cout << twice(21) << std::endl;")
    assert second["stdout"] == "42\n"
    structs = await api.execute(
        sid,
        "#include <vector>\nstruct Point { int x; int y; };\n"
        "std::vector<Point> points{{1, 2}, {3, 4}};",
    )
    assert structs["status"] == "ok", structs
    used = await api.execute(sid, "points.push_back({5, 6});\npoints.size()")
    assert value(used) == "3"
    assert value(await api.execute(sid, "points[2].y * 7")) == "42"


async def test_stdout_and_stderr_apart_and_values(api: Api, sid: str) -> None:
    body = await api.execute(
        sid, '#include <cstdio>\nprintf("out\\n");\nstd::cerr << "err" << std::endl;\n6 * 7'
    )
    assert body["stdout"] == "out\n" and body["stderr"] == "err\n"
    assert value(body) == "42"
    assert value(await api.execute(sid, 'std::string("hi")')) == '"hi"'
    assert value(await api.execute(sid, "std::vector<int>{1, 2, 3}")) == "{1, 2, 3}"


async def test_compile_error_then_a_good_cell(api: Api, sid: str) -> None:
    bad = await api.execute(sid, "int half = 1;\nint broken = ;")
    assert bad["status"] == "error"
    assert bad["error"]["ename"] == "CompileError"
    assert bad["error"]["evalue"] == "expected expression"
    assert "int broken = ;" in bad["error"]["traceback_text"]
    # Nothing of the failed cell stays: its first declaration can be made again.
    good = await api.execute(sid, "int half = 2;\nhalf + twice(1)")
    assert good["status"] == "ok", good
    assert value(good) == "4"


@pytest.mark.parametrize(
    ("code", "ename", "words"),
    [
        ("int *p = nullptr;\n*p = 1;", "Crash", "segmentation fault"),
        ('#include <stdexcept>\nthrow std::runtime_error("boom");', "Crash", "abort()"),
        ("#include <cstdlib>\nexit(3);", "Exit", "exit(3)"),
    ],
    ids=["segfault", "uncaught exception", "exit"],
)
async def test_a_crash_is_an_error_and_definitions_survive(
    api: Api, sid: str, code: str, ename: str, words: str
) -> None:
    body = await api.execute(sid, code)
    assert body["status"] == "error", body
    assert body["error"]["ename"] == ename
    assert words in body["error"]["evalue"]
    assert "replayed to restore" in body["error"]["traceback_text"]
    if "boom" in code:
        assert "what():  boom" in body["stderr"]
    after = await api.execute(sid, "twice(points.size())")
    assert after["status"] == "ok", after
    assert value(after) == "6"
    assert "replayed to restore the session's definitions" in after["stderr"]


async def test_endless_loop_is_interrupted_with_state_kept(api: Api, sid: str) -> None:
    body = await api.execute(sid, "while (true) {}", time_limit=1000)
    assert body["status"] == "timeout"
    assert body["state_kept"] is True and body["kernel_restarted"] is False
    assert body["error"]["ename"] == "Interrupted"
    assert value(await api.execute(sid, "twice(points.size())")) == "6"


async def test_a_megabyte_of_output(api: Api, sid: str) -> None:
    body = await api.execute(
        sid, "#include <string>\nstd::cout << std::string(1000000, 'x') << std::endl;"
    )
    assert body["status"] == "ok"
    assert body["output_truncated"] is True
    assert "of 1000001 characters shown" in body["stdout"]


async def test_cin_reads_input_requests(api: Api, sid: str) -> None:
    code = "int a, b;\nstd::cin >> a >> b;\nstd::cout << a + b << std::endl;"
    body = await api.execute(sid, code, stdin=["20 22"])
    assert body["status"] == "ok", body
    assert body["stdout"].endswith("42\n")
    starved = await api.execute(sid, "int c = -1;\nstd::cin >> c;\nc", stdin=[])
    assert starved["status"] == "error"
    assert any("no line was left in 'stdin'" in n for n in starved["notices"])
    assert starved["timed_out"] is False


@pytest.fixture
async def kernel() -> AsyncIterator[Any]:
    manager = AsyncKernelManager(kernel_name="cpp")
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    yield client
    client.stop_channels()
    await manager.shutdown_kernel(now=True)


async def test_kernel_info_and_is_complete(kernel: Any) -> None:
    info = (await kernel.kernel_info(reply=True, timeout=30))["content"]
    language = info["language_info"]
    assert language["name"] == "c++"
    assert language["mimetype"] == "text/x-c++src"
    assert language["file_extension"] == ".cpp"
    assert language["version"].startswith("19")
    incomplete = (await kernel.is_complete("int f() {", reply=True, timeout=30))["content"]
    assert incomplete["status"] == "incomplete"
    complete = await kernel.is_complete("int f() { return 1; }", reply=True, timeout=30)
    assert complete["content"]["status"] == "complete"


async def test_the_template_runs(api: Api) -> None:
    template = (await api.get("/api/v1/languages/cpp/template")).json["template"]
    session = await api.create_session(initial_language="cpp")
    body = await api.execute(session["session_id"], template)
    assert body["status"] == "ok", body
    assert body["stdout"] == "6\n"
    listed = {i["id"]: i for i in (await api.get("/api/v1/languages")).json["languages"]}
    assert listed["cpp"]["available"] and listed["cpp"]["interrupt"] == "message"
    assert listed["cpp"]["version"].startswith("19")


async def test_clang_repl_dies_with_its_kernel() -> None:
    manager = AsyncKernelManager(kernel_name="cpp")
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    kernel_pid = manager.provisioner.pid  # type: ignore[union-attr]
    repl = [p for p in psutil.Process(kernel_pid).children() if "clang-repl" in p.name()]
    assert len(repl) == 1
    client.stop_channels()
    os.kill(kernel_pid, signal.SIGKILL)  # no chance to close it
    await eventually(lambda: gone(repl[0].pid), "clang-repl to die with its kernel")
    await manager.shutdown_kernel(now=True)
