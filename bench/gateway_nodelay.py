"""A Jupyter Kernel Gateway whose kernel WebSockets set TCP_NODELAY.

Stock gateways (Kernel Gateway 3, Jupyter Server 2) do not set it on the server side of a
kernel's channels WebSocket, so each small message back to the client can wait for Nagle's
algorithm (about 40 ms here). This is the fix, on the gateway's side: run the gateway as

    python bench/gateway_nodelay.py [the gateway's usual options]

or put the same three lines in the gateway's start-up (a ``jupyter_kernel_gateway_config.py``
can import this module).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_server.services.kernels.websocket import KernelWebsocketHandler
from kernel_gateway.gatewayapp import launch_instance

# The handler's own open (jupyter_server leaves it unannotated): a coroutine function.
_open: Callable[..., Awaitable[None]] = KernelWebsocketHandler.open


async def _open_without_nagle(self: KernelWebsocketHandler, *args: Any, **kwargs: Any) -> None:
    self.set_nodelay(True)
    await _open(self, *args, **kwargs)


KernelWebsocketHandler.open = _open_without_nagle  # type: ignore[method-assign]

if __name__ == "__main__":
    launch_instance()
