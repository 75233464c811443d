"""Kernels in their sandbox, on a real server: what candidates' code cannot reach, and the
limits that hold it. Each run here is untrusted code doing what it should not."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from kernelpad.config import Settings
from kernelpad.kernels.runtime import remove_tree
from kernelpad.kernels.sandbox import Sandbox
from tests.conftest import Api, RunningServer, make_settings, running_server

SECRET = "kernelpad-test-secret-4f1d"


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1},
        code_execution_timeout=60,
        kernel_memory_limit_mb=256,
        kernel_max_processes=64,
        kernel_tmp_size_mb=32,
        kernel_max_file_size_mb=8,
        kernel_nice=10,
    )


@pytest.fixture(scope="module", autouse=True)
def secret_in_the_servers_environment() -> Any:
    # The server's environment: none of it may reach a kernel.
    os.environ["KERNELPAD_TEST_SECRET"] = SECRET
    yield
    del os.environ["KERNELPAD_TEST_SECRET"]


@pytest.fixture
async def session(api: Api) -> str:
    return str((await api.create_session())["session_id"])


async def run(api: Api, session: str, code: str, language: str = "python") -> dict[str, Any]:
    return await api.execute(session, code, language=language)


async def test_health_says_the_sandbox_is_on(api: Api) -> None:
    assert (await api.get("/api/v1/health")).json["sandbox"] is True


async def test_kernels_run_as_the_unprivileged_user(api: Api, session: str) -> None:
    uid = pwd.getpwnam("kernelpad-kernel").pw_uid
    body = await run(api, session, "import os\nprint(os.getuid(), os.geteuid(), os.getgroups())")
    assert body["stdout"] == f"{uid} {uid} []\n"
    java = await run(api, session, 'System.out.println(System.getProperty("user.name"));', "java")
    assert java["stdout"].strip() == "kernelpad-kernel", java


async def test_no_network_not_even_the_server(
    api: Api, session: str, server: RunningServer
) -> None:
    code = (
        "import socket\n"
        f"for address in [('127.0.0.1', {server.server.port}), ('1.1.1.1', 80)]:\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=3)\n"
        "        print('connected', address)\n"
        "    except OSError as exc:\n"
        "        print('refused', exc.errno)\n"
    )
    body = await run(api, session, code)
    assert "connected" not in body["stdout"] and body["stdout"].count("refused") == 2, body
    js = await run(
        api,
        session,
        f"try {{ await fetch('http://127.0.0.1:{server.server.port}/api/v1/health');"
        " console.log('connected') } catch (e) { console.log('refused') }",
        "javascript",
    )
    assert js["stdout"].strip() == "refused", js
    java = await run(
        api,
        session,
        'try (var s = new java.net.Socket("127.0.0.1", ' + str(server.server.port) + ")) {"
        ' System.out.println("connected"); } catch (Exception e) {'
        ' System.out.println("refused"); }',
        "java",
    )
    assert java["stdout"].strip() == "refused", java


async def test_the_servers_files_and_secrets_are_out_of_reach(
    api: Api, session: str, server_settings: Settings
) -> None:
    data = server_settings.data_dir.resolve()
    code = (
        "import os\n"
        f"for path in ['/etc/shadow', {str(data)!r}, {str(server_settings.database_path)!r},"
        " '/root/.bashrc']:\n"
        "    try:\n"
        "        print(path, 'listed' if os.path.isdir(path) and os.listdir(path) else\n"
        "              'read' if open(path, 'rb').read(1) is not None else '')\n"
        "    except OSError as exc:\n"
        "        print(path, 'refused', type(exc).__name__)\n"
        f"print('secret' if {SECRET!r} in repr(dict(os.environ)) else 'no secret')\n"
        "print(sorted(k for k in os.environ if k.startswith(('KERNELPAD', 'JUPYTERHUB'))))\n"
    )
    body = await run(api, session, code)
    lines = body["stdout"].splitlines()
    assert all("refused" in line for line in lines[:4]), lines
    assert lines[-2:] == ["no secret", "[]"], lines
    # /root holds only the Python installation kernels run from, where that is under it.
    listing = await run(api, session, "import os\nprint(os.listdir('/root'))")
    python_home = Path(sys.base_prefix).resolve().parts
    expected = [python_home[2]] if python_home[1:2] == ("root",) else []
    assert listing["stdout"] == f"{expected}\n", listing
    # Its pid 1 is the sandbox's own: the server's processes are not there to read.
    pids = "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit())[:3])"
    proc = await run(api, session, pids)
    assert proc["stdout"].startswith("[1, "), proc


async def test_writes_only_in_its_own_tmp(
    api: Api, session: str, server_settings: Settings
) -> None:
    code = (
        "import os\n"
        f"for path in ['/usr/evil', {str(server_settings.data_dir.resolve() / 'evil')!r},"
        " '/etc/evil', '/evil']:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path)\n"
        "open('/tmp/mine', 'w').write('ok')\n"
        "print(open('/tmp/mine').read(), os.getcwd())\n"
    )
    body = await run(api, session, code)
    assert "wrote" not in body["stdout"], body
    assert body["stdout"].splitlines()[-1] == "ok /tmp"
    assert not (server_settings.data_dir / "evil").exists()


async def test_jedis_prepared_cache_is_linked_into_the_new_home(api: Api, session: str) -> None:
    """The first Tab reads what install parsed (read-only in the box), and jedi still writes
    what it parses anew beside it; the user's namespace is left as it was."""
    prepared = Path(sys.prefix) / "share" / "kernelpad" / "jedi"
    names = {p.name for p in prepared.glob("*/*.pkl")}
    assert names, "make (kernelpad.kernels.install) prepares the cache"
    code = (
        "import json, os\n"
        "home = os.path.expanduser('~/.cache/jedi')\n"
        "links = [os.path.join(d, n) for d, _, ns in os.walk(home) for n in ns]\n"
        "print(json.dumps([os.path.basename(p) for p in links if os.path.islink(p)]))\n"
        "print([n for n in globals() if 'kernelpad' in n or n in ('_os', '_io', '_sys')])\n"
    )
    listed, leftovers = (await run(api, session, code))["stdout"].splitlines()
    assert set(json.loads(listed)) == names
    assert leftovers == "[]"
    body = {"code": "import wave\nwave.op", "cursor_pos": 19}
    answer = await api.post(f"/api/v1/sessions/{session}/complete", body)
    assert answer.status == 200 and "open" in answer.json["matches"], answer.json
    # wave was parsed in the box (it is not among the prepared): saved beside the links.
    after = await run(api, session, code)
    assert after["stderr"] == "" and after["status"] == "ok"
    files = await run(
        api,
        session,
        "print(sum(1 for d, _, ns in os.walk(home) for n in ns"
        " if not os.path.islink(os.path.join(d, n)) and n.endswith('.pkl')))",
    )
    assert int(files["stdout"]) >= 1, files


async def test_tmp_and_file_size_are_limited(api: Api, session: str) -> None:
    code = (
        "chunk = b'x' * 2**20\n"
        "written = 0\n"
        "try:\n"
        "    with open('/tmp/big', 'wb') as f:\n"
        "        for _ in range(100):\n"
        "            f.write(chunk); f.flush(); written += 1\n"
        "except OSError as exc:\n"
        "    print('stopped at', written, 'MiB:', exc.strerror)\n"
        "import os\nos.remove('/tmp/big')\n"
    )
    body = await run(api, session, code)
    # The file size limit (8 MiB) comes before the /tmp limit (32 MiB).
    assert body["stdout"].startswith("stopped at 8 MiB: File too large"), body
    fill = (
        "import os\nn = 0\n"
        "try:\n"
        "    for n in range(100):\n"
        "        with open(f'/tmp/part{n}', 'wb') as f:\n"
        "            f.write(b'x' * (4 * 2**20))\n"
        "except OSError as exc:\n"
        "    print('full after', n, exc.strerror)\n"
        "for name in os.listdir('/tmp'):\n"
        "    os.remove('/tmp/' + name)\n"
    )
    body = await run(api, session, fill)
    assert "full after" in body["stdout"] and "No space left" in body["stdout"], body


async def test_a_memory_bomb_kills_only_its_kernel(api: Api, session: str) -> None:
    other = str((await api.create_session())["session_id"])
    await run(api, other, "kept = 'other session'")
    body = await run(api, session, "hog = []\nwhile True:\n    hog.append(bytearray(2**24))")
    assert body["status"] == "kernel_died" and body["kernel_restarted"], body
    again = await run(api, session, "print('back')")
    assert again["stdout"] == "back\n"
    # The other session's kernel did not notice.
    assert (await run(api, other, "print(kept)"))["stdout"] == "other session\n"


async def test_a_fork_bomb_meets_the_process_limit(
    api: Api, session: str, server: RunningServer
) -> None:
    code = (
        "import os, time\n"
        "children = 0\n"
        "try:\n"
        "    for _ in range(1000):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "except OSError as exc:\n"
        "    print('stopped after', children, exc.strerror)\n"
    )
    bystander = str((await api.create_session())["session_id"])
    await run(api, bystander, "n = 1")
    body = await run(api, session, code)
    assert "stopped after" in body["stdout"], body
    assert int(body["stdout"].split()[2]) < 64
    # The server, the other session's kernel and this one all go on.
    assert (await run(api, bystander, "print(n + 1)"))["stdout"] == "2\n"
    # This kernel is out of processes while its children live: code that needs none more still
    # runs, code that starts a thread is told why it cannot, and a restart (what the pad's
    # Restart button does) gives a kernel that can again.
    assert (await run(api, session, "print('alive')"))["stdout"] == "alive\n"
    thread = "import threading\nt = threading.Thread(target=print, args=('thread',))\nt.start()"
    stuck = await run(api, session, thread)
    assert stuck["status"] == "error" and "thread" in stuck["stderr"], stuck["stderr"][-300:]
    await server.manager.runs.restart_kernel(session, "host", "python")
    assert (await run(api, session, f"{thread}\nt.join()"))["stdout"] == "thread\n"


def test_the_reason_a_sandbox_cannot_be_used_is_given() -> None:
    problem = Sandbox.problem("no-such-user-kp")
    assert problem is not None and "no-such-user-kp" in problem


async def test_the_sandbox_can_be_turned_off_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path / "data", kernel_pool_size={"python": 0}, sandbox=False)
    with caplog.at_level(logging.WARNING, logger="kernelpad.server"):
        async with running_server(settings) as running:
            assert (await running.api.get("/api/v1/health")).json["sandbox"] is False
    assert any("SANDBOX IS OFF" in record.getMessage() for record in caplog.records)


NICENESS = (
    "import os\n"
    "print(os.getpriority(os.PRIO_PROCESS, 0))\n"
    "try:\n"
    "    print((open('/proc/self/autogroup').read().split() or ['no-autogroup'])[-1])\n"
    "except OSError:\n"
    "    print('no-autogroup')\n"
    "try:\n"
    "    os.setpriority(os.PRIO_PROCESS, 0, 0)\n"
    "    print('raised')\n"
    "except PermissionError:\n"
    "    print('refused')\n"
)


def session_niceness(nice: int) -> str:
    """What a kernel given ``nice`` reads of its session's niceness: ``nice`` where Linux
    groups processes by session (autogroup), else 'no-autogroup'."""
    return str(nice) if Path("/proc/self/autogroup").exists() else "no-autogroup"


async def test_kernels_yield_the_cpu_to_the_server_and_cannot_take_it_back(
    api: Api, session: str
) -> None:
    """With KERNEL_NICE set, the server that every interview shares runs first when the CPUs
    are busy: kernels run 10 steps nicer, their keepers (a TCP kernel's relay) and the server
    as they were. A candidate cannot raise the kernel's priority again."""
    body = await run(api, session, NICENESS)
    # Its session's niceness too, where the scheduler shares the CPUs by session first.
    assert body["stdout"].split() == ["10", session_niceness(10), "refused"], body
    assert (await run(api, session, "console.log(6 * 7)", "javascript"))["stdout"] == "42\n"
    niceness: dict[str, set[int]] = {"ipykernel": set(), "deno": set(), "keeper": set()}
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            command = " ".join(process.cmdline())
            name = process.name()
            # (A keeper's command line, and bubblewrap's, hold the kernel's too.)
            if "kernelpad.kernels.keeper" in command:
                niceness["keeper"].add(process.nice())
            elif name == "deno":
                niceness["deno"].add(process.nice())
            elif "ipykernel_launcher" in command and name.startswith("python"):
                niceness["ipykernel"].add(process.nice())
    assert niceness == {"ipykernel": {10}, "deno": {10}, "keeper": {0}}, niceness
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the server's (this process)
    # Its session's too, unless it is in Linux's default group (read as nothing: processes
    # that no setsid() has moved, as in some containers), which has no niceness of its own.
    if Path("/proc/self/autogroup").exists():
        assert Path("/proc/self/autogroup").read_text().split()[-1:] in ([], ["0"])


async def test_kernels_are_niced_without_the_sandbox_too(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", kernel_pool_size={"python": 0}, sandbox=False, kernel_nice=5
    )
    async with running_server(settings) as running:
        session = str((await running.api.create_session())["session_id"])
        body = await run(running.api, session, NICENESS)
    # As root (no sandbox, no other user), the kernel could raise it back: not checked here.
    assert body["stdout"].split()[:2] == ["5", session_niceness(5)], body


async def test_java_and_javascript_heaps_stay_under_the_memory_limit(
    api: Api, session: str
) -> None:
    java = await run(
        api,
        session,
        "var hog = new java.util.ArrayList<byte[]>();\n"
        "while (true) { hog.add(new byte[16 * 1024 * 1024]); }",
        "java",
    )
    # The JVM's own limit comes first: an error the candidate can read, the kernel lives on.
    assert "OutOfMemoryError" in json.dumps(java["error"] or java["stderr"]), java
    assert (await run(api, session, "System.out.println(6 * 7);", "java"))["stdout"] == "42\n"
    js = await run(
        api, session, "const hog = []; while (true) hog.push(new Array(1e6).fill(1));", "javascript"
    )
    assert js["status"] in ("error", "kernel_died"), js
    assert (await run(api, session, "console.log(6 * 7)", "javascript"))["stdout"] == "42\n"


async def test_the_sandbox_hides_the_servers_processes(api: Api, session: str) -> None:
    code = (
        "import os\n"
        "for path in ['/proc/1/environ', f'/proc/{os.getppid()}/environ']:\n"
        "    try:\n"
        "        print(path, open(path, 'rb').read())\n"
        "    except OSError as exc:\n"
        "        print(path, 'refused', type(exc).__name__)\n"
        "print(len([p for p in os.listdir('/proc') if p.isdigit()]) < 10)\n"
        "print(os.path.exists('/home'))\n"
    )
    body = await run(api, session, code)
    lines = body["stdout"].splitlines()
    # pid 1 is the sandbox's own init, not the server: and its environment is not readable.
    assert "refused" in lines[0], lines
    assert lines[-2:] == ["True", "False"], lines
    assert SECRET not in body["stdout"]


async def test_what_is_orphaned_in_the_box_is_reaped(api: Api, session: str) -> None:
    # A process whose parent exits goes to the box's pid 1, which must wait for it (bwrap's
    # init, or the second bwrap where user namespaces are disabled): were the kernel pid 1,
    # each would stay a zombie, counted against the kernel's processes until it ends.
    code = (
        "import os, time\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(0.3)\n"
        "    os._exit(0)\n"
        "os.waitpid(child, 0)\n"
        "time.sleep(1.5)\n"
        "def state(pid):\n"
        "    try:\n"
        "        with open(f'/proc/{pid}/stat') as f:\n"
        "            return f.read().rsplit(')', 1)[1].split()[0]\n"
        "    except OSError:\n"
        "        return 'gone'\n"
        "print([state(p) for p in os.listdir('/proc') if p.isdigit()].count('Z'), os.getpid())\n"
    )
    body = await run(api, session, code)
    zombies, pid = body["stdout"].split()
    assert zombies == "0", body
    assert pid != "1", body


async def test_its_folder_is_sealed_and_its_output_is_its_own(api: Api, session: str) -> None:
    code = (
        "import os\nfrom ipykernel.kernelapp import IPKernelApp\n"
        "folder = os.path.dirname(IPKernelApp.instance().connection_file)\n"
        "for attempt in ('create', 'unlink'):\n"
        "    try:\n"
        "        if attempt == 'create':\n"
        "            open(os.path.join(folder, 'evil'), 'w')\n"
        "        else:\n"
        "            os.unlink(os.path.join(folder, 'k-1'))\n"
        "        print(attempt, 'done')\n"
        "    except OSError as exc:\n"
        "        print(attempt, 'refused', type(exc).__name__)\n"
        "targets = []\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        targets.append(os.readlink(f'/proc/self/fd/{fd}'))\n"
        "    except OSError:\n"
        "        pass  # the listing's own descriptor, closed by now\n"
        # Its stdout and stderr, as it was started with them (ipykernel keeps them), are the
        # server's pipe: no file of its folder is open for it to write.
        "print(sorted({t.split(':')[0] for t in targets if t.startswith(folder) or"
        " t.startswith('pipe:')}))\n"
        "import sys\n"
        "print(os.readlink(f'/proc/self/fd/{sys.stdout._original_stdstream_copy}')[:5])\n"
    )
    body = await run(api, session, code)
    assert body["stdout"].splitlines() == [
        "create refused PermissionError",
        "unlink refused PermissionError",
        "['pipe']",
        "pipe:",
    ], body


def test_a_folder_too_deep_for_rmtree_is_removed(tmp_path: Path) -> None:
    deep = tmp_path / "kernel"
    deep.mkdir()
    folder = os.open(deep, os.O_RDONLY)
    for _ in range(3000):  # deeper than a path can name: made one level at a time
        os.mkdir("d", dir_fd=folder)
        inner = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    os.close(folder)
    remove_tree(deep)
    assert not deep.exists()
