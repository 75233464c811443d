"""The settings that keep an idle kernel small are applied (bench/kernel_memory.py measures what
they save): JJava's kernel JVM started without its launcher JVM and with a small initial heap,
Deno's program without its benchmark buffer, ipykernel without its debugger and history
database, keepers without ``site``, a TCP kernel relayed by its keeper (no relay process), and
the relay carrying bytes both ways."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import threading
from pathlib import Path

from kernelpad.kernels import keeper_command as keeper
from kernelpad.kernels.install import (
    DENO_BENCH_BUFFER,
    DENO_BENCH_BUFFER_LAZY,
    lean_deno,
    python_argv,
)
from kernelpad.kernels.jjava.jvm import java_argv
from kernelpad.kernels.relay import KERNEL_FILE, PREFIX, Relay


def test_the_jvm_is_started_without_jjavas_launcher_and_with_a_small_heap() -> None:
    argv = java_argv(Path("/jdk/bin/java"))
    assert argv[0] == "/jdk/bin/java"
    assert not any("launcher" in part for part in argv)
    assert argv[-3:] == ["-jar", "{resource_dir}/jjava.jar", "{connection_file}"]
    assert "-Xms16m" in argv and "-XX:MaxHeapFreeRatio=30" in argv
    # No performance counters to sample 20 times a second.
    assert "-XX:-UsePerfData" in argv
    assert "jdk.jshell/jdk.jshell=ALL-UNNAMED" in argv
    # The heap's maximum is the sandbox's to set (half the kernel's memory limit).
    assert not any(part.startswith("-Xmx") for part in argv)


def test_ipykernel_starts_lean_and_without_a_history_database() -> None:
    argv = python_argv("/venv/bin/python")
    assert argv[1:3] == ["-m", "kernelpad.kernels.ipykernel_start"]
    # Whoever looks for Python kernels by their command line still finds them.
    assert argv[3:6] == ["ipykernel_launcher", "-f", "{connection_file}"]
    assert "--HistoryManager.enabled=False" in argv


def test_deno_runs_as_a_copy_without_its_benchmark_buffer(tmp_path: Path) -> None:
    program = b"\x7fELF..." + DENO_BENCH_BUFFER + b"...rest of the program"
    deno = tmp_path / "bin" / "deno"
    deno.parent.mkdir()
    deno.write_bytes(program)
    lean = lean_deno(deno, tmp_path / "share")
    assert lean == tmp_path / "share" / "deno"
    copy = lean.read_bytes()
    # The same length, the one line changed, and still a program.
    assert len(copy) == len(program) and copy.count(DENO_BENCH_BUFFER) == 0
    assert copy == program.replace(DENO_BENCH_BUFFER, DENO_BENCH_BUFFER_LAZY)
    assert DENO_BENCH_BUFFER_LAZY.strip() == b"let all = [];"
    assert lean.stat().st_mode & 0o111 and deno.read_bytes() == program
    assert not (tmp_path / "share" / "deno.partial").exists()


def test_a_deno_without_the_line_once_runs_as_it_is(tmp_path: Path) -> None:
    deno = tmp_path / "deno"
    for program in (b"fixed upstream", DENO_BENCH_BUFFER * 2):
        deno.write_bytes(program)
        assert lean_deno(deno, tmp_path / "share") is None
        assert not (tmp_path / "share").exists()
    # An earlier Deno's copy goes with it.
    deno.write_bytes(DENO_BENCH_BUFFER)
    assert lean_deno(deno, tmp_path / "share") is not None
    deno.write_bytes(b"fixed upstream")
    assert lean_deno(deno, tmp_path / "share") is None
    assert not (tmp_path / "share" / "deno").exists()


def test_a_keeper_runs_without_site_and_relays_in_a_network_namespace_of_its_own(
    tmp_path: Path,
) -> None:
    lease, folder = tmp_path / "k.lease", tmp_path / "k"
    plain = keeper.command(lease, folder, 5, [], None)
    assert plain[1:4] == ["-I", "-S", "-c"] and keeper.MODULE in plain
    assert "--relay" not in plain
    relayed = keeper.command(lease, folder, 5, [], None, relay=folder / "kernel.json")
    assert relayed[: len(PREFIX)] == PREFIX
    assert relayed[relayed.index("--relay") + 1] == str(folder / "kernel.json")


def test_a_keeper_imports_only_what_it_needs_to_keep_a_kernel(tmp_path: Path) -> None:
    """What a keeper imports stays with it for the kernel's life, one keeper per kernel: only a
    few modules of the standard library (``typing`` alone would be 0.8 MiB), its relay's too
    for a TCP kernel; what it needs once the kernel has ended is imported then."""
    boot = keeper.command(tmp_path / "k.lease", tmp_path / "k", 5, [], None)
    code = boot[boot.index("-c") + 1].replace("sys.exit(main())", "import kernelpad.kernels.relay")
    probe = f"{code}; print(' '.join(sorted(sys.modules)))"
    shown = subprocess.run([*boot[:3], "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(shown.stdout.split())
    assert "kernelpad.kernels.keeper" in loaded and "kernelpad.kernels.relay" in loaded
    heavy = {"typing", "pathlib", "logging", "argparse", "asyncio", "threading", "shutil", "site"}
    assert loaded & heavy == set()


def test_the_relay_carries_bytes_both_ways(tmp_path: Path) -> None:
    connection = tmp_path / "kernel.json"
    ports = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
    connection.write_text(json.dumps({"transport": "ipc", "ip": str(tmp_path / "k"), **ports}))
    relay = Relay(str(connection))
    relay.open()
    try:
        ours = json.loads((tmp_path / KERNEL_FILE).read_text())
        assert ours["transport"] == "tcp" and ours["ip"] == "127.0.0.1"
        assert relay.command(["deno", "--conn", str(connection)]) == [
            "deno", "--conn", str(tmp_path / KERNEL_FILE)
        ]  # fmt: skip
        # The "kernel": an echo server on its shell port, listening only after the server
        # connected (ZeroMQ connects as soon as the socket file exists).
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.connect(str(tmp_path / "k-1"))
        stop = threading.Event()

        def drive() -> None:
            while not stop.is_set():
                readable, writable, _ = select.select(
                    relay.readers(), relay.writers(), [], min(relay.timeout() or 0.05, 0.05)
                )
                relay.handle(readable, writable)

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        with socket.create_server(("127.0.0.1", ours["shell_port"])) as kernel:
            conn, _ = kernel.accept()
            with conn:
                server.sendall(b"x" * 200_000)
                got = b""
                while len(got) < 200_000:
                    got += conn.recv(65536)
                conn.sendall(got[::-1][:100])
                back = b""
                while len(back) < 100:
                    back += server.recv(65536)
        assert got == b"x" * 200_000 and back == b"x" * 100
        stop.set()
        driver.join(5)
        server.close()
    finally:
        relay.close()


def test_a_box_that_shares_its_keepers_network_makes_none(tmp_path: Path) -> None:
    from kernelpad.kernels.sandbox import Sandbox, SandboxLimits

    limits = SandboxLimits(256, 64, 60, 8, 256, 16)
    box = Sandbox("root", limits, None)
    assert "--unshare-net" in box.wrap(["true"], tmp_path, [])
    assert "--unshare-net" not in box.wrap(["true"], tmp_path, [], network=False)
