"""Reading a run's late output as kernelpad does, for the benchmarks that run code through
jupyter_client next to kernelpad: a kernel such as Deno's may send output after its idle
status, and kernelpad sends the language's done probe to know it has all of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient

from kernelpad.kernels.done_probe import PROBE_OWN, new_marker, probe_code


async def drain_late(
    kc: AsyncKernelClient,
    msg_id: str,
    probe: str,
    timeout: float,
    late_message: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[int, bool]:
    """Send ``probe`` after run ``msg_id``'s reply and idle status and read IOPub until its
    marker (and shell until its reply), as kernelpad does: how many late messages of the run
    came, under its parent or the probe's, and whether its result was among them. Each is
    also given to ``late_message``, if given: it is the run's output too."""
    marker = new_marker()
    probe_id = kc.execute(
        probe_code(probe, marker), silent=True, store_history=False, allow_stdin=False
    )
    late, result, marked = 0, False, False
    while not marked:
        msg = await kc.get_iopub_msg(timeout=timeout)
        parent, msg_type = msg["parent_header"].get("msg_id"), msg["header"]["msg_type"]
        if parent == probe_id and msg_type == "stream" and marker in msg["content"]["text"]:
            marked = True
        elif parent == msg_id or (parent == probe_id and msg_type not in PROBE_OWN):
            late += 1
            result = result or msg_type == "execute_result"
            if late_message is not None:
                late_message(msg)
    while (await kc.get_shell_msg(timeout=timeout))["parent_header"].get("msg_id") != probe_id:
        pass
    return late, result
