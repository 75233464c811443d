"""The command that starts a kernel below the server's priority (KERNEL_NICE), as a command
line: what the sandboxed kernels do with it is in test_sandbox.py."""

from __future__ import annotations

import shutil
import subprocess

from kernelpad.kernels.kept import niced


def test_at_zero_the_command_is_left_alone() -> None:
    assert niced(["python", "-m", "ipykernel_launcher"], 0) == [
        "python",
        "-m",
        "ipykernel_launcher",
    ]


def test_the_process_and_its_session_are_niced_before_the_kernel_starts() -> None:
    command = niced(["sh", "-c", 'echo "$(nice) $(cat /proc/self/autogroup)"'], 7)
    assert command[0] == "/bin/sh" and command[-3:] == ["sh", "-c", command[-1]]
    assert command[command.index(shutil.which("nice") or "nice") + 1 : -3] == ["-n", "7"]
    # In a session of its own, as a kernel's is: this process's session is left alone.
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, start_new_session=True
    )
    niceness, *autogroup = out.stdout.split()
    assert niceness == "7"
    if autogroup:  # where Linux groups processes by session (autogroup)
        assert autogroup[-1] == "7"
