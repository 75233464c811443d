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
from tests.kernels.cpp.client import cpp_kernel


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
    session_id: str = (await api.create_session(initial_language="cpp"))["session_id"]
    return session_id


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
    assert value(starved) == "-1"  # std::cin failed at the end of input
    assert any("it got the end of input" in n for n in starved["notices"])
    assert starved["timed_out"] is False


@pytest.fixture
async def kernel() -> AsyncIterator[Any]:
    async with cpp_kernel() as client:
        yield client


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


async def test_running_an_edited_cell_again_replaces_its_definitions(api: Api) -> None:
    sid = (await api.create_session(initial_language="cpp"))["session_id"]
    cell = (
        "#include <bits/stdc++.h>\nusing namespace std;\n"
        "int solve(const vector<int>& items) {\n    return accumulate(items.begin(),"
        " items.end(), 0);\n}\ncout << solve({1, 2, 3}) << endl;"
    )
    assert (await api.execute(sid, cell))["stdout"] == "6\n"
    edited = cell.replace("accumulate(items.begin(), items.end(), 0)", "items.size()")
    again = await api.execute(sid, edited)
    assert again["status"] == "ok", again
    assert again["stdout"] == "3\n"
    assert "'solve' was defined by an earlier cell" in again["stderr"]


TOTAL = (
    "int total(const vector<int>& a) {\n    int t = 0;\n    for (int x : a) t += x;\n"
    "    return t;\n}\n"
)


async def test_a_compile_error_in_template_code_does_not_hang(api: Api) -> None:
    sid = (await api.create_session(initial_language="cpp"))["session_id"]
    body = await api.execute(
        sid,
        "#include <bits/stdc++.h>\nusing namespace std;\nint total(const vector<int>& a) {\n"
        "    int t = 0;\n    for (int x : a) t += x;\n    return t;\n}\n"
        "cout << totl({1, 2, 3}) << endl;",
        time_limit=5000,
    )
    assert body["status"] == "error" and body["timed_out"] is False
    assert body["error"]["ename"] == "CompileError"
    # The error points at the cell's own line, without kernelpad's wrappers.
    assert body["error"]["traceback_text"].startswith("line 8, column 9: error:")
    assert "__kp" not in body["error"]["traceback_text"]
    # Nothing of the failed cell stays declared: the fixed cell runs whole.
    assert "note: 'total' declared here" in body["error"]["traceback_text"]
    fixed = await api.execute(sid, "using namespace std;\n" + TOTAL + "cout << total({1, 2, 3});")
    assert fixed["status"] == "ok", fixed
    assert fixed["stdout"] == "6"


async def test_input_state_does_not_leak_between_cells(api: Api, sid: str) -> None:
    ran_out = await api.execute(sid, "int e1 = -1;\nstd::cin >> e1;\ne1", stdin=[])
    assert value(ran_out) == "-1"
    fresh = await api.execute(sid, "int e2 = -1;\nstd::cin >> e2;\ne2", stdin=["5 6"])
    assert value(fresh) == "5"
    leftover = await api.execute(sid, "int e3 = -1;\nstd::cin >> e3;\ne3", stdin=["7"])
    assert value(leftover) == "7"
    unsynced = await api.execute(
        sid,
        "std::ios::sync_with_stdio(false);\nstd::cin.tie(nullptr);\n"
        "int e4 = -1;\nstd::cin >> e4;\ne4",
        stdin=["8"],
    )
    assert value(unsynced) == "8"


async def test_reading_until_the_end_of_input_is_not_an_error(api: Api, sid: str) -> None:
    body = await api.execute(
        sid, "long sum = 0, v;\nwhile (std::cin >> v) sum += v;\nsum", stdin=["1 2", "3"]
    )
    assert body["status"] == "ok", body
    assert value(body) == "6"


async def test_preprocessor_lines(api: Api, sid: str) -> None:
    body = await api.execute(sid, "#define SQUARE(x) \\\n    ((x) * (x))\nSQUARE(7)")
    assert value(body) == "49"
    refused = await api.execute(sid, "#ifndef ONLINE_JUDGE\nint judge = 1;\n#endif")
    assert refused["status"] == "error" and refused["timed_out"] is False
    assert "conditional preprocessor blocks" in refused["error"]["evalue"]


async def test_replay_gives_cells_the_input_they_read(api: Api) -> None:
    sid = (await api.create_session(initial_language="cpp"))["session_id"]
    await api.execute(sid, "#include <iostream>\nint n = -1;\nstd::cin >> n;", stdin=["5"])
    await api.execute(sid, "int *bad = nullptr;\n*bad = 1;")
    assert value(await api.execute(sid, "n")) == "5"


async def test_clang_repl_dies_with_a_busy_kernel() -> None:
    manager = AsyncKernelManager(kernel_name="cpp")
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    kernel_pid = manager.provisioner.pid  # type: ignore[union-attr]
    client.execute("while (true) {}")
    await eventually(lambda: _busy_repl(kernel_pid), "clang-repl to spin")
    repl = [p for p in psutil.Process(kernel_pid).children() if "clang-repl" in p.name()]
    client.stop_channels()
    os.kill(kernel_pid, signal.SIGKILL)  # no chance to stop it
    await eventually(lambda: gone(repl[0].pid), "clang-repl to die with its kernel")
    await manager.shutdown_kernel(now=True)


def _busy_repl(kernel_pid: int) -> bool:
    children = [p for p in psutil.Process(kernel_pid).children() if "clang-repl" in p.name()]
    return bool(children) and children[0].cpu_percent(interval=0.2) > 50
