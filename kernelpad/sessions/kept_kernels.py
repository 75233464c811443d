"""Which kernel each session's language runs in, where kernels outlive a server (a gateway's,
or local ones under their keepers): stored when it changes, so that the next server to drive
the session takes the kernel back, variables and all."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kernelpad.errors import KernelpadError
from kernelpad.kernels.base import KernelBackend, KernelHandle
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.logs import about
from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)


class KeptKernels:
    """The kernels of sessions this server drives, as stored; ``grace`` is how long one waits
    for the next server once none holds it (seconds)."""

    def __init__(
        self,
        store: SessionStore,
        registry: LanguageRegistry,
        backend: KernelBackend,
        grace: float,
    ) -> None:
        self.store = store
        self.registry = registry
        self.backend = backend
        self.grace = grace
        self._kept: dict[tuple[str, str], str] = {}  # the kernel id stored, by (session, language)
        self._taken_back: set[str] = set()  # sessions whose kept kernels were looked for

    async def keep(self, session_id: str, language: str, kernel: KernelHandle | None) -> None:
        """The session's kernel for ``language`` is ``kernel``: stored, when it changes."""
        if kernel is None or not self.backend.keeps_kernels:
            return
        if self._kept.get((session_id, language)) != kernel.kernel_id:
            await self.store.save_kernel(session_id, language, kernel.kernel_id)
            self._hold(session_id, language, kernel)

    def _hold(self, session_id: str, language: str, kernel: KernelHandle) -> None:
        """Should this server go, the kernel waits for the next."""
        kernel.outlive(self.grace)
        self._kept[(session_id, language)] = kernel.kernel_id

    def let_go(self, session_id: str) -> None:
        """Another process drives the session now: its kernels stay stored, for it."""
        self._unkept(session_id)
        self._taken_back.discard(session_id)

    def _unkept(self, session_id: str, language: str | None = None) -> None:
        for key in [k for k in self._kept if k[0] == session_id and language in (None, k[1])]:
            del self._kept[key]

    async def forget(self, session_id: str, language: str | None = None) -> None:
        """The session's kernels (of ``language`` only, if given) are gone."""
        self._unkept(session_id, language)
        if self.backend.keeps_kernels:
            await self.store.forget_kernels(session_id, language)

    async def take_back(self, session_id: str, wanted: Callable[[str], bool]) -> list[KernelHandle]:
        """The kernels an earlier server left the session, still answering, the first time
        this server serves the session; only of the languages ``wanted`` (those the session
        has no kernel of here). Only then, and only that session's: behind a proxy, another
        process may serve the others."""
        if not self.backend.keeps_kernels or session_id in self._taken_back:
            return []
        self._taken_back.add(session_id)
        taken = []
        for _, language, kernel_id in await self.store.session_kernels(session_id):
            kernel = None
            try:
                installed = self.registry.get(language)
            except KernelpadError:
                installed = None  # no longer offered here: it is not taken back
            if installed is not None and wanted(language):
                kernel = await self.backend.take_back(kernel_id, installed)
            if kernel is None:
                await self.store.forget_kernels(session_id, language)
                continue
            self._hold(session_id, language, kernel)
            taken.append(kernel)
            log.info(
                "session %s: took its %s kernel %s back",
                session_id,
                language,
                kernel_id,
                extra=about(session_id, language),
            )
        return taken
