"""kernelpad asks Linux to acknowledge what a gateway sends at once, before every read of the
socket: a stock gateway's Nagle then never waits on a delayed acknowledgement (see
``acknowledge_at_once``; bench/gateway_latency.py has the figures)."""

from __future__ import annotations

import socket

import pytest
from tornado.iostream import IOStream

from kernelpad.kernel_gateway.kernel import acknowledge_at_once


def quick_ack(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
async def test_every_read_asks_for_quick_acknowledgements_again() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    stream = IOStream(client)
    try:
        acknowledge_at_once(stream)
        assert quick_ack(client) == 1
        for _ in range(3):
            # Linux leaves quick-ack mode as it sees fit: here, by being told to.
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
            assert quick_ack(client) == 0
            peer.sendall(b"reply")
            assert await stream.read_bytes(5) == b"reply"
            assert quick_ack(client) == 1
    finally:
        stream.close()
        peer.close()
        listener.close()
