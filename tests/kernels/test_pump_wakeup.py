"""A message that reaches a kernel's socket while jupyter_client sends on it is still read by
the socket's pump (kernelpad.kernels.local_kernel): jupyter_client sends through a blocking shadow
of the asyncio socket, and the arrival that send takes in is otherwise never signalled to the
pump's pending ``recv_multipart()``. Seen on Deno: a done probe's replies left unread for good
after an interrupt, and the kernel given up."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import zmq
import zmq.asyncio

from kernelpad.kernels import local_kernel


@dataclass
class Channel:
    """What the helper uses of jupyter_client's channel: its asyncio socket."""

    socket: zmq.asyncio.Socket


async def reply_during_a_send(after_send: bool) -> list[bytes] | None:
    """A pending receive on a DEALER, the ROUTER's reply arriving while the event loop is busy,
    then a send through a blocking shadow of the DEALER (as jupyter_client's Session.send):
    what the pending receive gets within a second (None: nothing). ``after_send``: kernelpad's
    helper called after the send, as LocalKernel calls it."""
    context = zmq.asyncio.Context.instance()
    # In-process, in one context: a message is in the receiving socket's queue once sent.
    router: zmq.Socket[bytes] = zmq.Context.shadow(context.underlying).socket(zmq.ROUTER)
    dealer = context.socket(zmq.DEALER)
    # An address of its own: ZeroMQ frees a closed socket's address later, in its own thread.
    address = f"inproc://kernelpad-pump-wakeup-{uuid.uuid4().hex}"
    try:
        router.bind(address)
        dealer.connect(address)
        await dealer.send(b"hello")
        identity, _ = router.recv_multipart()
        pending = asyncio.ensure_future(dealer.recv_multipart())
        await asyncio.sleep(0.01)  # the receive waits on the socket's events
        router.send_multipart([identity, b"reply"])  # the event loop does not run meanwhile
        zmq.Socket.shadow(dealer.underlying).send(b"request")
        if after_send:
            local_kernel._sent(Channel(dealer))  # type: ignore[arg-type]
        try:
            return await asyncio.wait_for(pending, 1.0)
        except TimeoutError:
            return None
    finally:
        dealer.close(0)
        router.close(0)


async def test_a_reply_that_came_during_a_send_is_received() -> None:
    assert await reply_during_a_send(after_send=True) == [b"reply"]


async def test_without_the_helper_it_waits_unseen() -> None:
    # What the helper is for: pyzmq's asyncio socket does not see the blocking send. (Should
    # this fail after an upgrade, pyzmq sees such sends now, and the helper can go.)
    assert await reply_during_a_send(after_send=False) is None
