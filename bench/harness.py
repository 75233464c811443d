"""What the benchmarks here share: their error, a free port, the tail of a server's log, a
description of the machine the figures come from, and the verdict against a target."""

from __future__ import annotations

import datetime
import os
import platform
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import tornado

import kernelpad


class BenchError(Exception):
    """Something went wrong that makes the figures meaningless; the message says what."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kernelpad_command(port: int, data_dir: str, *flags: str) -> list[str]:
    """``python -m kernelpad`` on ``port`` with its own data dir, logging warnings only, and
    ``flags`` (the benchmark's own settings)."""
    base = [sys.executable, "-m", "kernelpad", "--port", str(port), "--data-dir", data_dir]
    return [*base, "--log-level", "WARNING", *flags]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> bool:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; whether it
    stopped by itself (a server that needs SIGKILL is a problem worth reporting)."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def machine_info(**versions: str) -> dict[str, Any]:
    """The machine and the versions measured (``versions``: libraries of the benchmark's own);
    the load average at the end says how busy the shared machine was."""
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kernelpad": kernelpad.__version__,
        "tornado": tornado.version,
        **versions,
    }


def verdict(value: float, target: float) -> str:
    return "target met" if value <= target else "target missed"
