"""Pre-started kernels, so that a new session's first run does not wait for a kernel to boot."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time

from kernelpad import metrics
from kernelpad.errors import KernelStartFailed
from kernelpad.kernels.base import KernelBackend, KernelHandle
from kernelpad.kernels.languages import InstalledLanguage, LanguageRegistry

log = logging.getLogger(__name__)


class KernelPool:
    """Keeps ``sizes[language]`` kernels ready per language and refills in the background.

    :meth:`acquire` hands out a ready kernel at once; with none ready it takes over a start already
    under way, and only then starts one cold. Either way the pool starts a replacement.
    """

    def __init__(
        self, backend: KernelBackend, registry: LanguageRegistry, sizes: dict[str, int]
    ) -> None:
        self.backend = backend
        self.registry = registry
        self.sizes = dict(sizes)
        self._ready: dict[str, collections.deque[KernelHandle]] = collections.defaultdict(
            collections.deque
        )
        self._starting: dict[str, list[asyncio.Task[KernelHandle]]] = collections.defaultdict(list)
        self._closed = False

    def fill(self) -> None:
        """Start filling every configured pool whose language is installed."""
        installed = {item.language.id: item for item in self.registry.installed()}
        for language_id, size in self.sizes.items():
            item = installed.get(language_id)
            if not size:
                continue
            if item is None or not item.available:
                why = item.unavailable_reason if item else "not offered here"
                log.warning("no kernel pool for %s: %s", language_id, why)
            else:
                self._refill(item)

    @property
    def ready_count(self) -> int:
        return sum(len(ready) for ready in self._ready.values())

    def ready_by_language(self) -> dict[str, int]:
        return {language: len(ready) for language, ready in self._ready.items()}

    async def _start(self, language: InstalledLanguage) -> KernelHandle:
        """Start a kernel, counted and timed for /metrics."""
        lang = language.language.id
        began = time.monotonic()
        try:
            kernel = await self.backend.start(language)
        except Exception:
            metrics.KERNEL_STARTS.labels(lang, "failed").inc()
            raise
        metrics.KERNEL_START_SECONDS.labels(lang).observe(time.monotonic() - began)
        metrics.KERNEL_STARTS.labels(lang, "ok").inc()
        return kernel

    def _refill(self, language: InstalledLanguage) -> None:
        if self._closed:
            return
        lang = language.language.id
        missing = self.sizes.get(lang, 0) - len(self._ready[lang]) - len(self._starting[lang])
        for _ in range(missing):
            task = asyncio.create_task(self._start(language))
            self._starting[lang].append(task)
            task.add_done_callback(functools.partial(self._started, lang))

    def _started(self, lang: str, task: asyncio.Task[KernelHandle]) -> None:
        if task not in self._starting[lang]:
            return  # claimed by acquire(), which awaits it itself
        self._starting[lang].remove(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.warning("pre-starting a %s kernel failed: %s", lang, task.exception())
            return
        kernel = task.result()
        self.registry.learn(lang, kernel.language_info)
        if self._closed:
            asyncio.create_task(kernel.shutdown())
        else:
            self._ready[lang].append(kernel)

    async def acquire(self, language: InstalledLanguage) -> KernelHandle:
        """A started kernel for ``language``, now if one is ready."""
        lang = language.language.id
        if self._closed:
            raise KernelStartFailed(
                f"No {language.language.display_name} kernel: kernelpad is shutting down."
            )
        try:
            while self._ready[lang]:
                kernel = self._ready[lang].popleft()
                if await kernel.is_alive():
                    return kernel
                log.warning("discarding dead pre-started %s kernel %s", lang, kernel.kernel_id)
                await kernel.shutdown()
            if self._starting[lang]:
                kernel = await self._starting[lang].pop(0)
            else:
                kernel = await self._start(language)
            self.registry.learn(lang, kernel.language_info)
            return kernel
        finally:
            self._refill(language)

    async def close(self) -> None:
        """Shut every pooled kernel down, including those still starting."""
        self._closed = True
        starting = [task for tasks in self._starting.values() for task in tasks]
        self._starting.clear()
        kernels = [kernel for ready in self._ready.values() for kernel in ready]
        self._ready.clear()
        for result in await asyncio.gather(*starting, return_exceptions=True):
            if isinstance(result, KernelHandle):
                kernels.append(result)
        await asyncio.gather(*(kernel.shutdown() for kernel in kernels))
