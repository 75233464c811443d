"""The languages an interview can use, and the kernelspecs that serve them.

A language is offered only if a kernelspec for it is actually installed: the list comes from
jupyter_client's ``KernelSpecManager``, never from a hard-coded promise.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from kernelpad.errors import UnknownLanguage


@dataclass(frozen=True)
class Language:
    """A language of kernelpad and the kernelspec that runs it."""

    id: str
    display_name: str
    kernel_names: tuple[str, ...]
    file_extension: str
    template: str
    description: str = ""


PYTHON_TEMPLATE = '''\
def solve(items: list[int]) -> int:
    """Return the answer for the given input."""
    return sum(items)


print(solve([1, 2, 3]))
'''

KNOWN_LANGUAGES: tuple[Language, ...] = (
    Language(
        id="python",
        display_name="Python 3",
        kernel_names=("python3",),
        file_extension=".py",
        template=PYTHON_TEMPLATE,
        description="CPython on the IPython kernel; variables persist between runs.",
    ),
)


@dataclass(frozen=True)
class InstalledLanguage:
    """A language together with the kernelspec found for it on this machine."""

    language: Language
    kernel_name: str
    kernel_display_name: str
    version: str | None


class LanguageRegistry:
    """Maps kernelpad's language ids to installed kernelspecs."""

    def __init__(
        self,
        spec_manager: KernelSpecManager | None = None,
        known: tuple[Language, ...] = KNOWN_LANGUAGES,
    ) -> None:
        self.spec_manager = spec_manager or KernelSpecManager()
        self._known = known
        self._installed: dict[str, InstalledLanguage] = {}

    async def refresh(self) -> None:
        """Look the kernelspecs up again (file system work, so in a thread)."""
        self._installed = await asyncio.to_thread(self._scan)

    def _scan(self) -> dict[str, InstalledLanguage]:
        found: dict[str, InstalledLanguage] = {}
        for language in self._known:
            for kernel_name in language.kernel_names:
                try:
                    spec = self.spec_manager.get_kernel_spec(kernel_name)
                except NoSuchKernel:
                    continue
                version = spec.metadata.get("language_version") if spec.metadata else None
                found[language.id] = InstalledLanguage(
                    language, kernel_name, spec.display_name, version
                )
                break
        return found

    def learn(self, language_id: str, language_info: dict[str, Any]) -> None:
        """Record the version a started kernel reports, where its kernelspec did not say."""
        item = self._installed.get(language_id)
        version = language_info.get("version")
        if item is not None and item.version is None and isinstance(version, str):
            self._installed[language_id] = dataclasses.replace(item, version=version)

    def installed(self) -> list[InstalledLanguage]:
        return list(self._installed.values())

    def get(self, language_id: str) -> InstalledLanguage:
        """The installed language ``language_id``, or a clear error listing the ones there are."""
        try:
            return self._installed[language_id]
        except KeyError:
            available = ", ".join(sorted(self._installed)) or "none"
            raise UnknownLanguage(
                f"Unknown language {language_id!r}; this server offers: {available}."
            ) from None
