"""A TCP kernel's keeper and its relay: nothing left behind when something fails, a connection
that cannot be made closed without taking the keeper down."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernelpad.kernels import keeper
from kernelpad.kernels.runtime import lease_path

ROOT = Path(__file__).resolve().parents[2]


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
