"""A keeper on its own, no server: its lease, a kernel kept for the next server or stopped with
its files, the kernel's output and status carried on, and a TCP kernel relayed. Each test runs
with both watches, Python's and the one in C that the installer builds
(``kernelpad/kernels/keeper_watch.c``): the keeper hands over to it once the kernel has started,
and the two must behave alike."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kernelpad.kernels import install
from kernelpad.kernels import keeper_command as keeper
from kernelpad.kernels.install import build_keeper_watch, c_compiler, keeper_watch_path
from kernelpad.kernels.runtime import lease_path

SLEEPER = ["sleep", "60"]


@pytest.fixture(params=["python", "c"])
def watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(keeper, "watch_program", lambda: None)
    elif keeper.watch_program() is None:
        if c_compiler() is None:
            pytest.skip("no C compiler here: keepers watch in Python")
        pytest.fail("the watch in C is not built: python -m kernelpad.kernels.install")
    return str(request.param)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    made = tmp_path / "k"
    made.mkdir()
    yield made
    for process in psutil.process_iter(["cmdline"]):
        if str(made) in " ".join(process.info["cmdline"] or []):
            process.kill()


def start(
    folder: Path,
    kernel: list[str],
    wait: float = 10.0,
    relay: Path | None = None,
    stdout: int = subprocess.DEVNULL,
    leader: bool = True,
) -> subprocess.Popen[bytes]:
    """A keeper of ``kernel``, the leader of its process group (as jupyter_client starts it)
    unless ``leader`` is False."""
    argv = keeper.command(lease_path(folder), folder, wait, [], None, relay=relay)
    return subprocess.Popen(
        [*argv, *kernel], stdin=subprocess.DEVNULL, stdout=stdout, start_new_session=leader
    )


def hold(folder: Path) -> socket.socket:
    """Connect to the keeper's lease as a server does, once it listens."""
    deadline = time.monotonic() + 10
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(lease_path(folder)))
            break
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            assert time.monotonic() < deadline, "the keeper never listened"
            time.sleep(0.02)
    sock.settimeout(10)
    assert sock.recv(3) == b"ok\n"
    return sock


def the_kernel(process: subprocess.Popen[bytes], name: str) -> psutil.Process:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for child in psutil.Process(process.pid).children(recursive=True):
            if child.name() == name:
                return child
        time.sleep(0.02)
    raise AssertionError(f"no {name} under the keeper")


def assert_all_gone(process: subprocess.Popen[bytes], kernel: psutil.Process, folder: Path) -> None:
    process.wait(timeout=15)
    kernel.wait(timeout=5)
    assert not folder.exists() and not lease_path(folder).exists()


def test_one_server_holds_the_lease_and_a_kernel_nobody_keeps_goes_with_its_files(
    watch: str, folder: Path
) -> None:
    process = start(folder, SLEEPER)
    first = hold(folder)
    kernel = the_kernel(process, "sleep")
    if watch == "c":  # the keeper has handed over: its process runs the watch in C now
        assert psutil.Process(process.pid).exe() == str(keeper.watch_program())
    # Found as a keeper of that kernel, as the sweep and the benchmarks look for keepers.
    cmdline = " ".join(psutil.Process(process.pid).cmdline())
    assert keeper.MODULE in cmdline and str(folder) in cmdline
    second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    second.connect(str(lease_path(folder)))
    second.settimeout(10)
    assert second.recv(3) == b""  # one server at a time
    second.close()
    assert kernel.is_running()
    first.close()  # keep 0: nobody's variables
    assert_all_gone(process, kernel, folder)


def test_a_kernel_kept_waits_for_the_next_server(watch: str, folder: Path) -> None:
    process = start(folder, SLEEPER)
    first = hold(folder)
    kernel = the_kernel(process, "sleep")
    first.sendall(b"keep 30\n")
    first.close()
    time.sleep(0.5)
    assert process.poll() is None and kernel.is_running()
    second = hold(folder)  # the next server takes it back
    second.sendall(b"keep 0\n")
    time.sleep(0.1)
    assert process.poll() is None and kernel.is_running()
    second.close()
    assert_all_gone(process, kernel, folder)


def test_nobody_taking_the_lease_in_time_stops_the_kernel(watch: str, folder: Path) -> None:
    process = start(folder, SLEEPER, wait=0.5)
    kernel = the_kernel(process, "sleep")
    assert_all_gone(process, kernel, folder)


def test_the_kernels_output_last_words_and_status_are_carried_on(watch: str, folder: Path) -> None:
    # More than the keeper's output pipe and one read of the keeper's hold (64 KiB each), less
    # than those and the kernel's pipe: the kernel ends, unread, with its last words still in
    # its pipe, which the keeper passes on as it ends.
    script = (
        "import sys; print('hello', flush=True);"
        " sys.stderr.write('x' * 100000 + 'bye'); sys.exit(3)"
    )
    # Not the leader of its process group: its status is then its kernel's (a leader's
    # clean-up ends its group, itself with it).
    process = start(folder, [sys.executable, "-c", script], stdout=subprocess.PIPE, leader=False)
    holder = hold(folder)
    deadline = time.monotonic() + 15
    while psutil.Process(process.pid).children() and time.monotonic() < deadline:
        time.sleep(0.02)  # until the kernel has ended, its output unread
    out, _ = process.communicate(timeout=20)
    holder.close()
    assert process.returncode == 3
    assert out.startswith(b"hello\n") and out.endswith(b"x" * 1000 + b"bye")
    assert not folder.exists() and not lease_path(folder).exists()


def test_the_server_sees_its_lease_end_once_the_kernels_files_are_gone(
    watch: str, folder: Path
) -> None:
    process = start(folder, [sys.executable, "-c", "import time; time.sleep(0.3)"])
    holder = hold(folder)
    assert holder.recv(1) == b""  # the kernel ended: its keeper is gone, or going
    assert not folder.exists() and not lease_path(folder).exists()
    holder.close()
    process.wait(timeout=15)


def test_a_kernel_whose_server_stops_reading_goes_on_and_sigterm_stops_it(
    watch: str, folder: Path
) -> None:
    script = "import time\nfor _ in range(200): print('y' * 10000, flush=True)\ntime.sleep(60)"
    process = start(folder, [sys.executable, "-c", script], stdout=subprocess.PIPE)
    holder = hold(folder)
    assert process.stdout is not None
    process.stdout.read(10)
    process.stdout.close()  # the server went away: the kernel must not die of a broken pipe
    kernel = the_kernel(process, Path(sys.executable).name)
    time.sleep(1.0)
    assert kernel.is_running() and process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert_all_gone(process, kernel, folder)
    holder.close()


ECHO_KERNEL = textwrap.dedent(
    """
    import json, socket, sys, time
    ports = json.load(open(sys.argv[1]))
    time.sleep(0.3)  # listens late: the relay dials again until it does
    with socket.create_server(("127.0.0.1", ports["shell_port"])) as server:
        conn, _ = server.accept()
        while data := conn.recv(65536):
            conn.sendall(data)
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own needs root")
def test_a_tcp_kernel_is_relayed_both_ways(watch: str, folder: Path) -> None:
    connection = folder / "kernel.json"
    ports = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
    connection.write_text(json.dumps({"transport": "ipc", "ip": str(folder / "s"), **ports}))
    kernel = [sys.executable, "-c", ECHO_KERNEL, str(connection)]
    process = start(folder, kernel, relay=connection)
    holder = hold(folder)
    shell = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    shell.connect(str(folder / "s-1"))
    sent = bytes(range(256)) * 4000  # 1 MB each way: more than any buffer holds
    shell.setblocking(False)
    got, offset = b"", 0
    deadline = time.monotonic() + 20
    while len(got) < len(sent) and time.monotonic() < deadline:
        if offset < len(sent):
            with contextlib.suppress(BlockingIOError):
                offset += shell.send(sent[offset : offset + 65536])
        try:
            got += shell.recv(65536)
        except BlockingIOError:
            time.sleep(0.001)
    assert got == sent
    shell.close()  # the kernel sees the end and exits; the keeper with it
    process.wait(timeout=15)
    holder.close()
    assert not folder.exists()


def test_the_installer_builds_the_watch_and_removes_earlier_builds(tmp_path: Path) -> None:
    if c_compiler() is None:
        pytest.skip("no C compiler here: keepers watch in Python")
    earlier = keeper_watch_path(tmp_path).with_name("watch-0123456789ab")
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"")
    said = build_keeper_watch(tmp_path)
    program = keeper_watch_path(tmp_path)
    assert str(program) in said
    assert os.access(program, os.X_OK) and not earlier.exists()
    usage = subprocess.run([str(program)], capture_output=True, text=True, check=False)
    assert usage.returncode == 64 and usage.stderr.startswith("usage: keeper-watch")


def test_without_a_c_compiler_keepers_watch_in_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install, "C_COMPILERS", ("no-such-compiler",))
    assert "watches in Python" in build_keeper_watch(tmp_path)
    assert not keeper_watch_path(tmp_path).exists()


def test_a_watch_that_cannot_start_leaves_the_keeper_watching_in_python(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that the system will not run (here: no executable format at all) is said in
    the keeper's log, and the keeper goes on in Python with the signals it had blocked for
    the exec unblocked: a SIGTERM still stops the kernel and cleans up."""
    broken = tmp_path / "watch-broken"
    broken.write_bytes(b"not a program\n")
    broken.chmod(0o755)
    monkeypatch.setattr(keeper, "watch_program", lambda: broken)
    argv = keeper.command(lease_path(folder), folder, 10.0, [], None)
    assert str(broken) in argv
    with subprocess.Popen(
        [*argv, *SLEEPER],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as process:
        holder = hold(folder)
        kernel = the_kernel(process, "sleep")
        assert Path(psutil.Process(process.pid).exe()).name.startswith("python")
        holder.sendall(b"keep 30\n")  # kept: only the SIGTERM can end it now
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert_all_gone(process, kernel, folder)
        holder.close()
        assert process.stderr is not None
        said = process.stderr.read().decode()
    assert said.startswith(f"keeper: watching in Python: {broken}:"), said


ENDED_BEFORE = textwrap.dedent(
    """
    import os, socket, subprocess, sys, time
    program, lease, marker = sys.argv[1:]
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(lease)
    listener.listen(1)
    output, kernel_end = os.pipe()
    # What the kernel left running keeps its output pipe open.
    left = subprocess.Popen(["sleep", "60"], stdout=kernel_end, start_new_session=True)
    print(left.pid, flush=True)
    kernel = os.fork()
    if kernel == 0:
        os._exit(3)
    time.sleep(0.3)  # ended, and its SIGCHLD gone with it (ignored, as by default)
    os.close(kernel_end)
    for fd in (output, listener.fileno()):
        os.set_inheritable(fd, True)
    clean_up = ["/bin/sh", "-c", 'echo "$2" > "$0"', marker]  # then: --status N
    argv = ["--lease", str(listener.fileno()), "--output", str(output), "--child", str(kernel)]
    os.execv(program, [program, *argv, "--wait", "60", "--", *clean_up])
    """
)


def test_the_watch_in_c_sees_a_kernel_that_ended_before_it_took_over(tmp_path: Path) -> None:
    program = keeper.watch_program()
    if program is None:
        pytest.skip("no watch in C here: keepers watch in Python")
    marker = tmp_path / "cleaned"
    script = [sys.executable, "-c", ENDED_BEFORE, str(program), str(tmp_path / "l"), str(marker)]
    with subprocess.Popen(script, stdout=subprocess.PIPE, text=True) as watch:
        assert watch.stdout is not None
        left = psutil.Process(int(watch.stdout.readline()))
        try:
            # Not the minute it waits for a server, nor the minute the pipe stays open.
            assert watch.wait(timeout=20) == 0
        finally:
            left.kill()
    assert marker.read_text() == "3\n"  # cleaned up, with the kernel's status
