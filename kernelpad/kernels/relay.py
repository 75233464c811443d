"""The relay of a kernel that only speaks TCP (Deno's, JJava), run by its keeper.

In the sandbox the kernel's network is its own: a TCP port it listens on cannot be reached from
the server's. So the server connects over Unix sockets in the kernel's folder (ZeroMQ ``ipc``,
as with every sandboxed kernel), and the kernel's keeper carries each connection to the kernel's
TCP port, byte for byte (ZeroMQ's wire protocol does not care what carries it). The keeper can
reach that port because it runs in the kernel's network namespace: it is started in a new one
(``unshare --net``, :data:`PREFIX`), brings its loopback up, and the sandbox then makes none of
its own, so the kernel shares it. Unix sockets bound to a path are reached from any network
namespace, so the server reaches the keeper's lease and these sockets as before.

No process of its own, and nothing but the standard library: the keeper's ``select`` loop
drives it (the asyncio relay it replaces was a Python process per kernel of 20 MiB RSS, 12.6
PSS). The kernel gets a connection file of its own (``kernel-tcp.json``: the same key, TCP ports
on its loopback) wherever its command names the server's.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import struct
import time
from collections.abc import Sequence

CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
#: What starts a keeper in a network namespace of its own, for a kernel behind a relay.
PREFIX = ["unshare", "--net", "--"]
KERNEL_FILE = "kernel-tcp.json"
CHUNK = 65536
RETRY = 0.05  # seconds between attempts to reach a kernel that does not listen yet
PATIENCE = 30.0  # seconds a server's connection waits for the kernel to listen
ACCEPT_PAUSE = 0.1  # seconds without taking connections once descriptors run out
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sh22x"  # struct ifreq: the name, the flags, the rest of its union


def loopback_up() -> None:
    """Bring up the loopback of this (new) network namespace, as bubblewrap does for its own."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Link:
    """One connection of the server's and the kernel's end of it."""

    def __init__(self, server: socket.socket, port: int) -> None:
        self.server = server
        self.port = port
        self.kernel: socket.socket | None = None
        self.connected = False
        self.retry_at = 0.0  # when to try the kernel's port again, once it refused
        self.give_up_at = time.monotonic() + PATIENCE
        self.to_kernel = b""
        self.to_server = b""
        self.closed = False

    def dial(self) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            self.close()  # no socket to be had (EMFILE, ENOBUFS): this connection goes
            return
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            self.close()
            return
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.later()
            return
        self.kernel = sock

    def later(self) -> None:
        """The kernel does not listen yet (ZeroMQ connects as soon as the socket file exists)."""
        self.kernel = None
        if time.monotonic() >= self.give_up_at:
            self.close()
        else:
            self.retry_at = time.monotonic() + RETRY

    def dialled(self) -> None:
        assert self.kernel is not None
        if self.kernel.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.kernel.close()
            self.later()
        else:
            self.connected = True

    def move(self, source: socket.socket) -> None:
        """Read what ``source`` sent and send it on, as much as the other end takes now."""
        try:
            data = source.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        if source is self.server:
            self.to_kernel += data
        else:
            self.to_server += data
        self.flush(self.kernel if source is self.server else self.server)

    def flush(self, sink: socket.socket | None) -> None:
        if sink is None:
            return
        pending = self.to_kernel if sink is self.kernel else self.to_server
        try:
            sent = sink.send(pending)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if sink is self.kernel:
            self.to_kernel = self.to_kernel[sent:]
        else:
            self.to_server = self.to_server[sent:]

    def close(self) -> None:
        self.closed = True
        for sock in (self.server, self.kernel):
            if sock is not None:
                sock.close()


class Relay:
    """The Unix sockets of one kernel's channels, and the connections through them."""

    def __init__(self, connection_file: str) -> None:
        self.connection_file = connection_file
        self.kernel_file = os.path.join(os.path.dirname(connection_file), KERNEL_FILE)
        self.listeners: dict[socket.socket, int] = {}
        self.links: list[Link] = []
        # No connection is taken before this (monotonic) time: see _accept.
        self.accept_after = 0.0

    def open(self) -> None:
        """Write the kernel's connection file and listen where the server will connect. In the
        keeper's network namespace, before the kernel starts."""
        with open(self.connection_file) as file:
            info = json.load(file)
        ports = dict(zip(CHANNELS, _free_ports(len(CHANNELS)), strict=True))
        ours = {**info, "transport": "tcp", "ip": "127.0.0.1", **ports}
        # Owned and readable as the server's connection file is (the kernel's group reads it):
        # the keeper may be root, the kernel is not.
        owner = os.stat(self.connection_file)
        if os.path.lexists(self.kernel_file):
            os.unlink(self.kernel_file)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(self.kernel_file, flags, 0o600)
        try:
            os.write(fd, json.dumps(ours).encode())
            os.fchown(fd, owner.st_uid, owner.st_gid)
            os.fchmod(fd, owner.st_mode & 0o777)
        finally:
            os.close(fd)
        for channel in CHANNELS:
            path = f"{info['ip']}-{info[channel]}"
            if os.path.lexists(path):
                os.unlink(path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            mask = os.umask(0o177)  # made 0600: only the server's user connects, not the kernel
            try:
                listener.bind(path)
            finally:
                os.umask(mask)
            listener.listen(8)
            listener.setblocking(False)
            self.listeners[listener] = ports[channel]

    def command(self, argv: list[str]) -> list[str]:
        """The kernel's command, naming its own connection file instead of the server's."""
        return [arg.replace(self.connection_file, self.kernel_file) for arg in argv]

    def readers(self) -> list[socket.socket]:
        found = list(self.listeners) if time.monotonic() >= self.accept_after else []
        for link in self.links:
            if link.connected and link.kernel is not None:
                if not link.to_kernel:
                    found.append(link.server)
                if not link.to_server:
                    found.append(link.kernel)
        return found

    def writers(self) -> list[socket.socket]:
        found = []
        for link in self.links:
            if link.kernel is None:
                continue
            if not link.connected or link.to_kernel:
                found.append(link.kernel)
            if link.to_server:
                found.append(link.server)
        return found

    def timeout(self) -> float | None:
        """Seconds until a connection tries the kernel's port again, if one waits to, or
        until connections are taken again."""
        waiting = [link.retry_at for link in self.links if link.kernel is None]
        if self.accept_after > time.monotonic():
            waiting.append(self.accept_after)
        return max(0.0, min(waiting) - time.monotonic()) if waiting else None

    def handle(self, readable: Sequence[object], writable: Sequence[object]) -> None:
        for listener, port in self.listeners.items():
            if listener in readable:
                self._accept(listener, port)
        now = time.monotonic()
        for link in self.links:
            if link.closed:
                continue
            if link.kernel is None:
                if now >= link.retry_at:
                    link.dial()
                continue
            if not link.connected:
                if link.kernel in writable:
                    link.dialled()
                continue
            if link.server in readable:
                link.move(link.server)
            if not link.closed and link.kernel in readable:
                link.move(link.kernel)
            if not link.closed and link.kernel in writable:
                link.flush(link.kernel)
            if not link.closed and link.server in writable:
                link.flush(link.server)
        self.links = [link for link in self.links if not link.closed]

    def _accept(self, listener: socket.socket, port: int) -> None:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # The connection stays queued, so the listener stays readable: without a
                # pause, select would return at once, again and again, until a descriptor
                # is free.
                self.accept_after = time.monotonic() + ACCEPT_PAUSE
            return
        conn.setblocking(False)
        link = Link(conn, port)
        link.dial()
        if not link.closed:
            self.links.append(link)

    def close(self) -> None:
        for link in self.links:
            link.close()
        for listener in self.listeners:
            listener.close()
