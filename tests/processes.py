"""Stopping the servers the tests start as child processes (kernelpad, gateways, JupyterHub,
PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen[bytes], timeout: float = 30, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (as a service manager would) and wait for the exit; SIGKILL only if the
    process does not exit within ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
