"""What a sandboxed kernel may not ask of the Linux kernel: no user namespace (where it would be
root, and could mount), and none of the system calls an interview never needs. Each run here is
untrusted code trying, from Python, Java and Deno."""

from __future__ import annotations

import errno
import json
import logging
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pyseccomp
import pytest

from kernelpad.config import Settings
from kernelpad.kernels import sandbox as sandbox_module
from kernelpad.kernels.sandbox import Sandbox, SandboxLimits
from kernelpad.kernels.seccomp import SeccompUnavailable, program_fd
from tests.conftest import Api, make_settings

USER = "kernelpad-kernel"
# For boxes started here, without a cgroup: the process limit is then the kernels' user's, and
# the module's kernels have their threads.
LIMITS = SandboxLimits(
    memory_mb=256, processes=4096, cpu_seconds=60, file_size_mb=8, open_files=256, tmp_mb=16
)

CLONE_FS = 0x00000200
CLONE_NEWUSER = 0x10000000
PTRACE_ATTACH = 16

# Each call with arguments that, were it let through, would succeed or fail with an errno of
# its own (EBADF, EFAULT, EINVAL, ESRCH...) rather than EPERM, where the call allows it: so that
# EPERM says the filter stopped it, not a missing privilege. The rest need a capability the
# kernel does not have, and are denied by the filter before that is checked.
CALLS: dict[str, tuple[int, ...]] = {
    "unshare": (CLONE_NEWUSER,),  # would succeed: a user namespace, root in it
    "clone": (CLONE_NEWUSER | CLONE_FS, 0, 0, 0, 0),  # EINVAL: the two do not go together
    "setns": (-1, 0),  # EBADF
    "mount": (0, 0, 0, 0, 0),
    "umount2": (0, 0),
    "pivot_root": (0, 0),
    "open_tree": (-1, 0, 0),  # EBADF or EFAULT
    "ptrace": (PTRACE_ATTACH, 0, 0, 0),  # ESRCH
    "process_vm_readv": (0, 0, 0, 0, 0, 0),  # ESRCH
    "keyctl": (0, -3, 0),  # would succeed: the id of its session keyring
    "add_key": (0, 0, 0, 0, 0),  # EFAULT
    "request_key": (0, 0, 0, 0),  # EFAULT
    "bpf": (0, 0, 0),
    "perf_event_open": (0, 0, -1, -1, 0),  # EFAULT
    "userfaultfd": (3,),  # EINVAL: user-mode-only plus a flag that does not exist
    "io_uring_setup": (0, 0),  # EFAULT or EINVAL
    "kexec_load": (0, 0, 0, 0),
    "kexec_file_load": (-1, -1, 0, 0, 0),
    "init_module": (0, 0, 0),
    "finit_module": (-1, 0, 0),
    "delete_module": (0, 0),
    "swapon": (0, 0),
    "swapoff": (0,),
    "reboot": (0, 0, 0, 0),
    "clone3": (0, 0),  # EFAULT or EINVAL; denied with ENOSYS, so libc falls back to clone
}


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1, "javascript": 1, "java": 1},
        code_execution_timeout=60,
        kernel_memory_limit_mb=512,
    )


@pytest.fixture
async def session(api: Api) -> str:
    return str((await api.create_session())["session_id"])


async def run(api: Api, session: str, code: str, language: str = "python") -> dict[str, Any]:
    return await api.execute(session, code, language=language)


def _numbers() -> dict[str, int]:
    native = pyseccomp.Arch.NATIVE
    return {name: pyseccomp.resolve_syscall(native, name) for name in CALLS}


async def test_the_calls_an_interview_never_needs_fail_with_eperm(api: Api, session: str) -> None:
    # In a process of its own: single-threaded, as unshare(CLONE_NEWUSER) needs to succeed, and
    # so that whatever one of them did, were it let through, ends with it.
    probe = (
        "import ctypes, errno, json, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "calls, numbers = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "for name, args in calls.items():\n"
        "    ctypes.set_errno(0)\n"
        "    result = libc.syscall(ctypes.c_long(numbers[name]),"
        " *[ctypes.c_long(a) for a in args])\n"
        "    err = ctypes.get_errno()\n"
        "    print(name, 'ok' if result >= 0 else errno.errorcode.get(err, err))\n"
    )
    code = (
        "import json, subprocess, sys\n"
        f"probe = {probe!r}\n"
        f"calls, numbers = {json.dumps(CALLS)!r}, {json.dumps(_numbers())!r}\n"
        "out = subprocess.run([sys.executable, '-c', probe, calls, numbers],"
        " capture_output=True, text=True, timeout=30)\n"
        "print(out.stdout + out.stderr, end='')\n"
        "status = open('/proc/self/status').read()\n"
        "print([line for line in status.splitlines() if line.startswith('Seccomp')])\n"
    )
    body = await run(api, session, code)
    lines = body["stdout"].strip().splitlines()
    results = dict(line.split(" ", 1) for line in lines[:-1])
    expected = {name: "EPERM" for name in CALLS} | {"clone3": "ENOSYS"}
    assert results == expected, (results, body["stderr"])
    # Mode 2: a filter, inherited by everything the kernel starts.
    assert lines[-1].startswith("['Seccomp:\\t2'"), lines[-1]


async def test_no_user_namespace_so_no_mount(api: Api, session: str) -> None:
    code = (
        "import subprocess\n"
        "for command in (['unshare', '-r', '-m', 'sh', '-c',"
        " 'mount -t tmpfs none /tmp && echo mounted; mount -t cgroup2 none /tmp && echo cg'],\n"
        "                ['unshare', '-r', 'id', '-u'], ['unshare', '-n', 'true']):\n"
        "    out = subprocess.run(command, capture_output=True, text=True, timeout=30)\n"
        "    print(out.returncode, (out.stdout + out.stderr).strip().replace('\\n', ' | '))\n"
    )
    body = await run(api, session, code)
    lines = body["stdout"].splitlines()
    assert len(lines) == 3, body
    for line in lines:
        assert not line.startswith("0 "), body
        assert "Operation not permitted" in line, body
    assert "mounted" not in body["stdout"] and " cg" not in body["stdout"], body


async def test_no_tracing_another_process(api: Api, session: str) -> None:
    # Its own child, which it could trace without the filter: the kernel's other processes
    # (bubblewrap's, a program it starts) are its user's as well.
    code = (
        "import ctypes, subprocess, time\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "time.sleep(0.2)\n"
        f"attach = ctypes.c_long({PTRACE_ATTACH})\n"
        "result = libc.ptrace(attach, ctypes.c_long(child.pid), None, None)\n"
        "print(result, ctypes.get_errno())\n"
        "child.kill()\n"
        "child.wait()\n"
    )
    body = await run(api, session, code)
    assert body["stdout"] == f"-1 {errno.EPERM}\n", body


async def test_java_and_deno_cannot_make_a_user_namespace_either(api: Api, session: str) -> None:
    js = await run(
        api,
        session,
        "const out = new Deno.Command('unshare', {args: ['-r', 'id', '-u'], stderr: 'piped',"
        " stdout: 'piped'}).outputSync();\n"
        "console.log(out.code, new TextDecoder().decode(out.stderr).trim());",
        "javascript",
    )
    assert js["stdout"].startswith("1 ") and "Operation not permitted" in js["stdout"], js
    java = await run(
        api,
        session,
        'var process = new ProcessBuilder("unshare", "-r", "id", "-u")'
        ".redirectErrorStream(true).start();\n"
        "var said = new String(process.getInputStream().readAllBytes()).trim();\n"
        'System.out.println(process.waitFor() + " " + said);',
        "java",
    )
    assert java["stdout"].startswith("1 ") and "Operation not permitted" in java["stdout"], java
    # And both go on: their threads and processes are made through clone, which is allowed.
    again = await run(api, session, "console.log(await Promise.resolve(6 * 7))", "javascript")
    assert again["stdout"] == "42\n", again


def in_a_box(sandbox: Sandbox, script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``script`` run by sh in a box of ``sandbox``, as a kernel would be."""
    fd = program_fd(sandbox.seccomp) if sandbox.seccomp else None
    try:
        return subprocess.run(
            sandbox.wrap(["sh", "-c", script], folder, [], fd),
            pass_fds=() if fd is None else (fd,),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if fd is not None:
            os.close(fd)


def test_its_user_namespace_alone_makes_no_other(tmp_path: Path) -> None:
    # Without the filter: what --disable-userns does by itself. The kernel's user namespace
    # maps its uid and nothing else; a new one is over the namespace's limit of one.
    sandbox = Sandbox(USER, LIMITS, None, seccomp=None, userns_disabled=True)
    done = in_a_box(sandbox, "cat /proc/self/uid_map; unshare -r true", tmp_path)
    uid = pwd.getpwnam(USER).pw_uid
    assert done.stdout.split() == [str(uid), str(uid), "1"], done
    assert done.returncode != 0 and "No space left on device" in done.stderr, done


def test_where_user_namespaces_cannot_be_disabled_the_filter_alone_stops_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As on a machine with bubblewrap older than 0.8: said at start, and the filter goes on
    # the one bwrap there is.
    reason = "bwrap: Unknown option --disable-userns"
    monkeypatch.setattr(Sandbox, "userns_problem", lambda self: reason)
    with caplog.at_level(logging.WARNING, logger="kernelpad.kernels.sandbox"):
        sandbox = Sandbox.create(USER, LIMITS)
    said = [r.getMessage() for r in caplog.records if "user namespaces" in r.getMessage()]
    assert said and reason in said[0] and "the seccomp filter alone" in said[0], said
    assert "user namespaces NOT disabled" in sandbox.describe()
    done = in_a_box(sandbox, "grep '^Seccomp:' /proc/self/status; unshare -r true", tmp_path)
    assert done.stdout.split() == ["Seccomp:", "2"], done
    assert done.returncode != 0 and "Operation not permitted" in done.stderr, done


def test_a_missing_filter_is_said_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable() -> bytes:
        raise SeccompUnavailable("libseccomp cannot be loaded (no libseccomp.so.2)")

    monkeypatch.setattr(sandbox_module, "compile_filter", unavailable)
    with caplog.at_level(logging.WARNING, logger="kernelpad.kernels.sandbox"):
        sandbox = Sandbox.create(USER, LIMITS)
    said = [r.getMessage() for r in caplog.records if "seccomp" in r.getMessage()]
    assert said and "no libseccomp.so.2" in said[0] and "unshare, mount, ptrace" in said[0]
    assert sandbox.seccomp is None and "NO seccomp filter" in sandbox.describe()
    # User namespaces are still disabled, without it.
    assert sandbox.userns_disabled
