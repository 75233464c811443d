"""The small interface every kernel back-end presents, local or remote.

A session only ever holds a :class:`KernelHandle`; whether the kernel runs in a local process
started by jupyter_client or behind a Jupyter Server's REST and WebSocket API is the back-end's
business. Execution with limits (:mod:`kernelpad.kernels.execution`) is written once against this
interface, on the raw Jupyter messages, so time limits and output caps behave the same everywhere.
"""

from __future__ import annotations

import abc
from typing import Any

from kernelpad.kernels.languages import InstalledLanguage

Message = dict[str, Any]


class KernelHandle(abc.ABC):
    """A started kernel that code can be sent to."""

    kernel_id: str
    language: InstalledLanguage
    #: ``language_info`` of the kernel's ``kernel_info_reply`` (name, version, ...).
    language_info: dict[str, Any]

    @abc.abstractmethod
    def execute_request(self, code: str) -> str:
        """Send an ``execute_request`` on the shell channel; return its ``msg_id``."""

    @abc.abstractmethod
    async def receive(self, timeout: float) -> tuple[str, Message] | None:
        """The next message from the kernel as ``(channel, message)``, channel ``"iopub"`` or
        ``"shell"``; ``None`` if nothing arrived within ``timeout`` seconds."""

    @abc.abstractmethod
    async def is_alive(self) -> bool:
        """Whether the kernel can still answer."""

    @abc.abstractmethod
    async def interrupt(self) -> None:
        """Ask the kernel to stop what it runs, keeping its state."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Stop the kernel and release everything it holds. Safe to call twice."""

    @property
    def pid(self) -> int | None:
        """The kernel's process id where it is a local process."""
        return None


class KernelBackend(abc.ABC):
    """Starts kernels for languages."""

    @abc.abstractmethod
    async def start(self, language: InstalledLanguage) -> KernelHandle:
        """Start a kernel for ``language`` and return it once it answers ``kernel_info``."""
