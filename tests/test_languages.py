"""Every language kernelpad knows, on its real kernel: state between runs, streams, results,
errors, time limits, input, templates. The same expectations for each language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, eventually, make_settings

LANGUAGES = ["python", "javascript", "typescript", "java"]


@dataclass(frozen=True)
class Case:
    define: str  # defines x = 41 and a function twice(n)
    use: str  # prints twice(x)
    streams: str  # prints "out" to stdout, "err" to stderr, and ends with the expression 6 * 7
    error: str  # raises an error whose message is "boom"
    ename: str
    loop: str  # never ends
    read_x: str  # an expression whose value is x
    ask_two: str  # reads two lines and prints "hi <first> and <second>"


CASES = {
    "python": Case(
        define="x = 41\ndef twice(n):\n    return 2 * n",
        use="print(twice(x))",
        streams="import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7",
        error="raise ValueError('boom')",
        ename="ValueError",
        loop="while True:\n    pass",
        read_x="x",
        ask_two="a = input('First? ')\nb = input('Second? ')\nprint(f'hi {a} and {b}')",
    ),
    "javascript": Case(
        define="var x = 41;\nfunction twice(n) { return 2 * n; }",
        use="console.log(twice(x));",
        streams="console.log('out');\nconsole.error('err');\n6 * 7",
        error="throw new TypeError('boom');",
        ename="TypeError",
        loop="while (true) {}",
        read_x="x",
        ask_two="var a = prompt('First?');\nvar b = prompt('Second?');\n"
        "console.log(`hi ${a} and ${b}`);",
    ),
    "typescript": Case(
        define="var x: number = 41;\nfunction twice(n: number): number { return 2 * n; }",
        use="console.log(twice(x));",
        streams="console.log('out');\nconsole.error('err');\n6 * 7",
        error="throw new TypeError('boom');",
        ename="TypeError",
        loop="while (true) {}",
        read_x="x",
        ask_two="var a: string | null = prompt('First?');\n"
        "var b: string | null = prompt('Second?');\nconsole.log(`hi ${a} and ${b}`);",
    ),
    "java": Case(
        define="int x = 41;\nint twice(int n) { return 2 * n; }",
        use="System.out.println(twice(x));",
        streams='System.out.println("out");\nSystem.err.println("err");\n6 * 7',
        error='throw new IllegalStateException("boom");',
        ename="IllegalStateException",
        loop="while (true) {}",
        read_x="x",
        ask_two="var in = new java.util.Scanner(System.in);\nString a = in.nextLine();\n"
        'String b = in.nextLine();\nSystem.out.println("hi " + a + " and " + b);',
    ),
}


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={language: 1 for language in LANGUAGES},
        code_execution_timeout=10,
    )


@pytest.fixture(scope="module")
async def sessions(api: Api) -> dict[str, str]:
    """A session per language, shared by the tests below (one kernel each)."""
    return {
        language: (await api.create_session(initial_language=language))["session_id"]
        for language in LANGUAGES
    }


def result_text(body: dict[str, Any]) -> str | None:
    results = [o for o in body["outputs"] if o["output_type"] == "execute_result"]
    return results[-1]["data"]["text/plain"] if results else None


@pytest.mark.parametrize("language", LANGUAGES)
async def test_state_persists_between_runs(
    api: Api, sessions: dict[str, str], language: str
) -> None:
    case, sid = CASES[language], sessions[language]
    defined = await api.execute(sid, case.define)
    assert defined["status"] == "ok", defined
    used = await api.execute(sid, case.use)
    assert used["status"] == "ok", used
    assert used["stdout"] == "82\n"
    assert used["language"] == language


@pytest.mark.parametrize("language", LANGUAGES)
async def test_streams_apart_and_the_last_value_as_result(
    api: Api, sessions: dict[str, str], language: str
) -> None:
    body = await api.execute(sessions[language], CASES[language].streams)
    assert body["status"] == "ok", body
    assert body["stdout"] == "out\n"
    assert body["stderr"] == "err\n"
    assert result_text(body) == "42"
    assert isinstance(body["execution_count"], int)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_errors_are_structured_with_plain_and_raw_tracebacks(
    api: Api, sessions: dict[str, str], language: str
) -> None:
    case = CASES[language]
    body = await api.execute(sessions[language], case.error)
    assert body["status"] == "error"
    error = body["error"]
    assert case.ename in error["ename"] + error["evalue"] + error["traceback_text"]
    assert "boom" in error["evalue"]
    assert error["traceback"], "the raw traceback is kept"
    assert "\x1b[" not in error["traceback_text"]
    assert "\x1b[" not in body["stderr"] and "boom" in body["stderr"]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_endless_loop_is_interrupted_and_state_kept(
    api: Api, sessions: dict[str, str], language: str
) -> None:
    case, sid = CASES[language], sessions[language]
    await api.execute(sid, case.define)
    body = await api.execute(sid, case.loop, time_limit=1000)
    assert body["status"] == "timeout"
    assert body["state_kept"] is True and body["kernel_restarted"] is False
    after = await api.execute(sid, case.read_x)
    assert after["status"] == "ok", after
    assert result_text(after) == "41"


@pytest.mark.parametrize("language", LANGUAGES)
async def test_input_is_answered_from_stdin(
    api: Api, sessions: dict[str, str], language: str
) -> None:
    body = await api.execute(sessions[language], CASES[language].ask_two, stdin=["Ada", "Alan"])
    assert body["status"] == "ok", body
    assert body["stdout"].endswith("hi Ada and Alan\n")
    assert "Ada\n" in body["stdout"]  # echoed after its prompt, as a console shows it


@pytest.mark.parametrize("language", LANGUAGES)
async def test_missing_input_fails_fast_and_keeps_state(
    api: Api, sessions: dict[str, str], language: str
) -> None:
    case, sid = CASES[language], sessions[language]
    await api.execute(sid, case.define)
    body = await api.execute(sid, case.ask_two, stdin=["only one"])
    # The run ends at once, as the kernel ends it: Python raises EOFError, Deno's and JJava's
    # kernels (which have no end of input) get an empty line.
    assert body["timed_out"] is False, body
    assert body["status"] == ("error" if language == "python" else "ok"), body
    assert any("more input than 'stdin' had" in notice for notice in body["notices"]), body
    after = await api.execute(sid, case.read_x)
    assert result_text(after) == "41", after


@pytest.mark.parametrize("language", LANGUAGES)
async def test_template_is_an_interview_starter_that_runs(api: Api, language: str) -> None:
    template = (await api.get(f"/api/v1/languages/{language}/template")).json["template"]
    assert "solve" in template
    session = await api.create_session(initial_language=language)
    assert session["code"] == template
    body = await api.execute(session["session_id"], template)
    assert body["status"] == "ok", body
    assert body["stdout"] == "6\n"


async def test_languages_describe_their_kernels(api: Api, sessions: dict[str, str]) -> None:
    for language in LANGUAGES:  # every kernel has started and said its version
        await api.execute(sessions[language], CASES[language].read_x)
    listed = {item["id"]: item for item in (await api.get("/api/v1/languages")).json["languages"]}
    assert set(LANGUAGES) <= set(listed)
    for language in LANGUAGES:
        item = listed[language]
        assert item["available"] is True and item["unavailable_reason"] is None
        assert item["keeps_state"] is True and item["stdin"] is True
        assert item["version"]
    assert listed["python"]["interrupt"] == "signal"
    assert listed["javascript"]["interrupt"] == listed["java"]["interrupt"] == "message"
    assert listed["javascript"]["kernel_name"] == listed["typescript"]["kernel_name"] == "deno"
    assert listed["java"]["version"].startswith("17")
    assert "not checked" in listed["typescript"]["description"]


async def test_a_new_java_session_runs_on_a_pre_started_kernel(server: RunningServer) -> None:
    manager = server.server.manager
    assert manager is not None
    await eventually(lambda: manager.pool._ready["java"], "a Java kernel in the pool")
    pooled = manager.pool._ready["java"][0]
    sid = (await server.api.create_session(initial_language="java"))["session_id"]
    body = await server.api.execute(sid, "1 + 1")
    assert body["status"] == "ok" and body["new_kernel"] is True
    assert manager.runs.runners()[(sid, "java")].kernel is pooled


# Where each of JJava's shell and control threads is, sampled from inside the kernel: JJava's
# own loop is in Thread.sleep nearly all the time (it looks at its socket, then sleeps 50 ms).
JAVA_SHELL_THREADS = """
var seen = new java.util.TreeSet<String>();
for (int i = 0; i < 20; i++) {
    for (var e : Thread.getAllStackTraces().entrySet()) {
        if (!e.getKey().getName().startsWith("Shell-")) continue;
        for (var frame : e.getValue()) {
            if (frame.getMethodName().equals("sleep")) seen.add("sleeping");
            if (frame.getMethodName().equals("poll")) seen.add("polling");
        }
    }
    Thread.sleep(10);
}
var source = Class.forName("org.dflib.jjava.jupyter.channels.ShellChannel")
    .getProtectionDomain().getCodeSource().getLocation().getPath();
System.out.println(seen + " " + source);
"""


async def test_a_java_kernel_waits_for_requests_in_its_poll(
    api: Api, sessions: dict[str, str]
) -> None:
    """kernelpad's shell channel for JJava (kernelpad/kernels/jjava/ShellChannel.java) is the
    one the kernel runs, in its sandbox: its threads wait in their poll, and never sleep
    between two looks at the socket (JJava's own made each request wait up to 50 ms)."""
    body = await api.execute(sessions["java"], JAVA_SHELL_THREADS)
    assert body["status"] == "ok", body
    seen, source = body["stdout"].split("] ")
    assert seen == "[polling"
    assert source.rstrip().endswith("/share/kernelpad/jjava/")


PYTHON_KERNEL_SETUP = """\
import sys
from IPython import get_ipython
left_out = ("debugpy", "jupyter_client.manager", "jupyter_client.kernelspec")
print([m for m in left_out if sys.modules.get(m)], get_ipython().history_manager.enabled)
"""


async def test_a_python_kernel_runs_lean_and_keeps_its_history_in_memory(api: Api) -> None:
    """The python3 kernel, in its sandbox, runs without debugpy, jupyter_client's manager side
    and IPython's history database (kernelpad.kernels.ipykernel_start, the kernelspec's
    ``--HistoryManager.enabled=False``), and what a user reaches of them still works."""
    sid = (await api.create_session(initial_language="python"))["session_id"]
    body = await api.execute(sid, PYTHON_KERNEL_SETUP)
    assert body["status"] == "ok", body
    assert body["stdout"] == "[] False\n"
    body = await api.execute(sid, "%history -n")
    assert body["status"] == "ok", body
    assert body["stdout"].startswith("   1:\nimport sys\n")
    assert body["stdout"].endswith("   2: %history -n\n")
    body = await api.execute(sid, "print(_i1.splitlines()[0], len(In))")
    assert body["stdout"] == "import sys 4\n", body
    body = await api.execute(
        sid, "from jupyter_client import KernelManager\nprint(KernelManager.__module__)"
    )
    assert body["stdout"] == "jupyter_client.manager\n", body


async def test_python_sys_stdin_reads_the_input_lines(api: Api, sessions: dict[str, str]) -> None:
    body = await api.execute(
        sessions["python"],
        "import sys\nprint(sum(int(line) for line in sys.stdin))",
        stdin=["1", "2", "3"],
    )
    assert body["status"] == "ok", body
    assert body["stdout"].endswith("6\n"), body
    assert not any("no line was left" in n for n in body["notices"])


async def test_a_loop_waiting_for_input_that_never_ends_is_stopped_with_state_kept(
    api: Api, sessions: dict[str, str]
) -> None:
    sid = sessions["javascript"]
    await api.execute(sid, CASES["javascript"].define)
    body = await api.execute(sid, "var n = 0;\nwhile (prompt() !== null) { n++; }", stdin=["a"])
    assert body["status"] == "error" and body["timed_out"] is False
    assert any("no line was left in 'stdin'" in notice for notice in body["notices"])
    assert "send the lines it reads in 'stdin'" in body["stderr"]
    assert body["state_kept"] is True
    assert result_text(await api.execute(sid, "x")) == "41"


async def test_output_after_idle_is_waited_for_only_so_long(
    api: Api, sessions: dict[str, str]
) -> None:
    sid = sessions["javascript"]
    body = await api.execute(sid, "var t = setInterval(() => console.log('tick'), 5);")
    assert body["status"] == "ok"
    stopped = await api.execute(sid, "clearInterval(t);")
    assert stopped["status"] == "ok"
