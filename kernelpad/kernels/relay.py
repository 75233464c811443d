"""A relay for kernels that only speak TCP (Deno's, JJava), run inside their sandbox.

In the sandbox the kernel's network is its own: a TCP port it listens on cannot be reached from
the server. So the server connects over Unix sockets in the kernel's folder (ZeroMQ ``ipc``, as
with every sandboxed kernel), and this relay, started in the box in the kernel's place, carries
each connection to the kernel's TCP port on the box's loopback, byte for byte (ZeroMQ's wire
protocol does not care what carries it).

    python -m kernelpad.kernels.relay CONNECTION_FILE -- KERNEL ARGV ... CONNECTION_FILE ...

CONNECTION_FILE is the server's (``transport: ipc``); the kernel gets one of its own, with the
same key and TCP ports, wherever its command names CONNECTION_FILE.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import sys
from pathlib import Path

CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _carry(
    port: int, unix_reader: asyncio.StreamReader, unix_writer: asyncio.StreamWriter
) -> None:
    # The kernel may not listen yet: ZeroMQ connects as soon as the socket file exists.
    for _ in range(600):
        try:
            tcp_reader, tcp_writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.05)
    else:
        unix_writer.close()
        return
    await asyncio.gather(_pipe(unix_reader, tcp_writer), _pipe(tcp_reader, unix_writer))


async def _main(connection_file: Path, argv: list[str]) -> int:
    info = json.loads(connection_file.read_text())
    ports = dict(zip(CHANNELS, _free_ports(len(CHANNELS)), strict=True))
    ours = {**info, "transport": "tcp", "ip": "127.0.0.1", **ports}
    kernel_file = connection_file.with_name("kernel-tcp.json")
    kernel_file.write_text(json.dumps(ours))
    os.chmod(kernel_file, 0o600)
    servers = []
    for channel in CHANNELS:
        path = f"{info['ip']}-{info[channel]}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        carry = functools.partial(_carry, ports[channel])
        servers.append(await asyncio.start_unix_server(carry, path=path))
    # The kernel's command names the server's connection file: it gets its own instead.
    command = [arg.replace(str(connection_file), str(kernel_file)) for arg in argv]
    kernel = await asyncio.create_subprocess_exec(*command)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, kernel.send_signal, signum)
    code = await kernel.wait()
    for server in servers:
        server.close()
    return code


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m kernelpad.kernels.relay CONNECTION_FILE -- KERNEL ARGV ...")
    sys.exit(asyncio.run(_main(Path(args[0]), args[2:])))


if __name__ == "__main__":
    main()
