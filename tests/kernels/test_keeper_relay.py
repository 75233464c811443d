"""A TCP kernel's keeper and its relay: nothing left behind when something fails, a connection
that cannot be made closed without taking the keeper down, Unix sockets only the server's user
can connect to; and where the keeper cannot have a network of its own, TCP kernels are
unavailable, and the log says why."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernelpad.errors import LanguageUnavailable
from kernelpad.kernels import keeper_command as keeper
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.kernels.relay import PREFIX, Relay
from kernelpad.kernels.runtime import lease_path
from kernelpad.kernels.sandbox import BWRAP, NO_RELAY, Sandbox, SandboxLimits, relay_problem

ROOT = Path(__file__).resolve().parents[2]
LIMITS = SandboxLimits(256, 64, 60, 8, 256, 16)
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


def test_out_of_descriptors_the_relay_pauses_accepting_instead_of_spinning(
    tmp_path: Path,
) -> None:
    # In a process of its own, as above: a connection waits on a listener while no
    # descriptor can be had; the relay's select loop must then sleep, not spin.
    connection = tmp_path / "kernel.json"
    connection.write_text(json.dumps({"transport": "ipc", "ip": str(tmp_path / "k"), **PORTS}))
    script = textwrap.dedent(
        f"""
        import resource, select, socket, time
        from kernelpad.kernels.relay import Relay

        relay = Relay({str(connection)!r})
        relay.open()
        client = socket.socket(socket.AF_UNIX)
        client.connect({str(tmp_path / "k-1")!r})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))
        rounds, started = 0, time.monotonic()
        while time.monotonic() - started < 0.5:
            readable, writable, _ = select.select(
                relay.readers(), relay.writers(), [], relay.timeout()
            )
            relay.handle(readable, writable)
            rounds += 1
        print("rounds", "few" if rounds < 20 else rounds, "links", len(relay.links))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        time.sleep(0.15)
        readable, writable, _ = select.select(relay.readers(), [], [], relay.timeout())
        relay.handle(readable, writable)
        print("links", len(relay.links))
        relay.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["rounds few links 0", "links 1"]


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


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root here")
def test_tcp_kernels_can_run_where_the_keeper_gets_a_network_of_its_own() -> None:
    assert relay_problem() is None
    box = Sandbox("root", LIMITS, None)
    assert box.unavailable("tcp") is None and box.unavailable("ipc") is None


def test_where_unshare_is_missing_or_refused_tcp_kernels_are_unavailable_and_why_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert relay_problem() == "unshare is not installed (Debian: util-linux)"
    monkeypatch.undo()
    # Refused: a user who may not make a network namespace (as the keeper would be, unprivileged).
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    refused = relay_problem([*nobody, *PREFIX, "true"])
    assert refused is not None and "unshare" in refused and "not permitted" in refused
    box = Sandbox("root", LIMITS, None, relay_problem=refused)
    assert box.unavailable("tcp") == NO_RELAY and box.unavailable("ipc") is None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which(BWRAP), reason="needs the sandbox")
def test_the_sandbox_made_at_start_says_tcp_kernels_cannot_run_without_unshare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bwrap = shutil.which(BWRAP)
    assert bwrap is not None
    (tmp_path / BWRAP).symlink_to(bwrap)
    monkeypatch.setenv("PATH", str(tmp_path))  # bubblewrap, and no unshare
    with caplog.at_level(logging.WARNING, logger="kernelpad.kernels.sandbox"):
        box = Sandbox.create("nobody", LIMITS)
    assert box.relay_problem == "unshare is not installed (Debian: util-linux)"
    assert box.unavailable("tcp") == NO_RELAY
    said = [record.getMessage() for record in caplog.records]
    assert any("only speak TCP" in line and "unshare is not installed" in line for line in said)


async def test_the_languages_list_says_why_tcp_kernels_cannot_run() -> None:
    registry = LanguageRegistry()
    await registry.refresh()
    available = {item.language.id: item for item in registry.installed() if item.available}
    assert {"python", "javascript"} <= set(available)  # the kernels `make` installs
    box = Sandbox("root", LIMITS, None, relay_problem="unshare: Operation not permitted")
    registry.withhold(box.unavailable)
    # Deno's kernel only speaks TCP: listed unavailable, with the reason, instead of failing at
    # every session's start; ipykernel's Unix sockets need no network of the kernel's own.
    javascript = registry.describe("javascript")
    assert not javascript.available and javascript.unavailable_reason == NO_RELAY
    assert registry.describe("python").available
    with pytest.raises(LanguageUnavailable, match="not available on this server"):
        registry.get("typescript")
