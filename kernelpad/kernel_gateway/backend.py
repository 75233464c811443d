"""Starts kernels on a gateway: the same :class:`KernelBackend` as local kernels, so sessions,
limits, interrupts and restarts behave the same wherever the kernel runs."""

from __future__ import annotations

import asyncio
import contextlib

from kernelpad.errors import KernelStartFailed
from kernelpad.kernel_gateway.client import GatewayClient
from kernelpad.kernel_gateway.kernel import GatewayKernel
from kernelpad.kernels.base import KernelBackend
from kernelpad.kernels.languages import InstalledLanguage


class GatewayBackend(KernelBackend):
    keeps_kernels = True  # the gateway runs them, whatever becomes of this server

    def __init__(self, client: GatewayClient, start_timeout: float = 60.0) -> None:
        self.client = client
        self.start_timeout = start_timeout

    async def attach(self, kernel_id: str, language: InstalledLanguage) -> GatewayKernel | None:
        if not await self.client.exists(kernel_id):
            return None
        kernel = GatewayKernel(kernel_id, language, self.client)
        try:
            await kernel.connect()
            info = await kernel.request("kernel_info_request", {}, self.start_timeout)
        except Exception:
            info = None
        if info is None:
            await kernel.detach()
            return None
        kernel.language_info = info["content"].get("language_info", {})
        return kernel

    async def start(self, language: InstalledLanguage) -> GatewayKernel:
        kernel_id = await self.client.start(language.kernel_name)
        kernel = GatewayKernel(kernel_id, language, self.client)
        try:
            await kernel.connect()
            info = await kernel.request("kernel_info_request", {}, self.start_timeout)
            if info is None:
                raise TimeoutError("no kernel_info_reply")
            kernel.language_info = info["content"].get("language_info", {})
            for code in (language.language.startup, language.language.warmup):
                if code:
                    content = {"code": code, "silent": True, "store_history": False}
                    if await kernel.request("execute_request", content, self.start_timeout) is None:
                        raise TimeoutError("the start-up code did not finish")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                # Shielded: a cancelled start must still not leave the kernel on the gateway.
                await asyncio.shield(kernel.shutdown())
            if isinstance(exc, KernelStartFailed) or not isinstance(exc, Exception):
                raise
            raise KernelStartFailed(
                f"The {language.language.display_name} kernel ({language.kernel_name}) did not"
                f" start on the gateway at {self.client.base}: {exc or type(exc).__name__}"
            ) from exc
        return kernel
