"""A TCP kernel's keeper and its relay: nothing left behind when something fails, a connection
that cannot be made closed without taking the keeper down, and Unix sockets only the server's
user can connect to."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernelpad.kernels import keeper
from kernelpad.kernels.relay import Relay
from kernelpad.kernels.runtime import lease_path

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own needs root")
def test_a_keeper_that_fails_before_its_kernel_starts_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "k"
    folder.mkdir()
    lease = lease_path(folder)
    # The server's connection file is missing: the relay cannot open, before any kernel runs.
    argv = keeper.command(lease, folder, 5, [], None, relay=folder / "kernel.json")
    done = subprocess.run(
        [*argv, "sleep", "30"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        start_new_session=True,
    )
    assert done.returncode != 0
    assert b"FileNotFoundError" in done.stderr  # said, before the keeper ends its group
    assert not folder.exists() and not lease.exists()


def test_a_connection_with_no_socket_to_be_had_is_closed_and_the_relay_goes_on() -> None:
    # In a process of its own: no descriptor can be opened there once its limit is lowered.
    script = textwrap.dedent(
        """
        import resource, socket
        from kernelpad.kernels.relay import Link

        server, peer = socket.socketpair()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))
        try:
            socket.socket().close()
        except OSError as exc:
            print("no socket:", exc.strerror)
        link = Link(server, 1)
        link.dial()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print("closed" if link.closed and server.fileno() == -1 else "open")
        print("peer sees the end" if peer.recv(1) == b"" else "peer waits")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "no socket: Too many open files",
        "closed",
        "peer sees the end",
    ]


def test_the_relays_sockets_are_only_the_servers_user_s_whatever_the_umask(
    tmp_path: Path,
) -> None:
    connection = tmp_path / "kernel.json"
    connection.write_text(json.dumps({"transport": "ipc", "ip": str(tmp_path / "k"), **PORTS}))
    relay = Relay(str(connection))
    mask = os.umask(0)
    try:
        relay.open()
        assert os.umask(0) == 0  # the relay gave the process its umask back
    finally:
        os.umask(mask)
        relay.close()
    for port in PORTS.values():
        mode = os.stat(tmp_path / f"k-{port}").st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
