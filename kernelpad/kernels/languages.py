"""The languages an interview can use, and the kernelspecs that serve them.

The list comes from jupyter_client's ``KernelSpecManager``, never from a hard-coded promise: every
kernelspec installed where jupyter_client looks (the venv, the user's and the system's folders)
becomes a language. The languages kernelpad knows well (Python, JavaScript, TypeScript, Java) get
their own names, templates and settings; any other kernelspec gets its display name and a generic
template. A language whose kernelspec or program is missing is listed as unavailable, with the
reason, instead of failing when a session starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from kernelpad.errors import LanguageUnavailable, UnknownLanguage


@dataclass(frozen=True)
class Language:
    """A language of kernelpad and the kernelspecs that can run it, best first."""

    id: str
    display_name: str
    kernel_names: tuple[str, ...]
    file_extension: str
    template: str
    description: str = ""
    keeps_state: bool = True
    stdin: bool = True
    #: Environment of its kernels; ``{data_dir}`` stands for kernelpad's data folder.
    env: dict[str, str] = field(default_factory=dict)
    #: For kernels that may send a run's output after its reply and idle status: code run
    #: silently after each run, which prints ``{marker}`` once everything the run printed is
    #: out. The run's output is what comes until the marker (see :data:`DENO_DONE_PROBE`).
    done_probe: str = ""
    #: Code run silently once in a new kernel, before a session gets it.
    warmup: str = ""
    #: Code run silently in every new kernel: part of the language's environment.
    startup: str = ""
    #: The answer to an input request once the run's input is used up. ipykernel (and
    #: kernelpad's C++ kernel) read an EOT as end of input; other kernels have no end of
    #: input, and get an empty line.
    eof: str = "\x04"


PYTHON_TEMPLATE = '''\
def solve(items: list[int]) -> int:
    """Return the answer for the given input."""
    return sum(items)


print(solve([1, 2, 3]))
'''

# ipykernel answers input() through the frontend, but not sys.stdin: this makes sys.stdin read
# the same way (input requests), so "for line in sys.stdin" works as it does in a terminal.
# Completions are not warmed here: jedi's warm-up made every kernel 45 MiB larger (105 MiB
# against 60, pooled ones too) and cost 2 s of CPU per kernel start. jedi loads at a session's
# first Tab instead, in the kernels that are asked, as in JupyterLab. The box's home is new:
# jedi's cache prepared at install (install.prepare_completions, read-only in the box) is
# linked into it, file by file, so that jedi reads what it parsed there and writes beside it.
PYTHON_STARTUP = """\
import io as _io, os as _os, sys as _sys
def _kernelpad_link_jedi_cache():
    prepared = _os.path.join(_sys.prefix, "share", "kernelpad", "jedi")
    home = _os.path.join(_os.path.expanduser("~"), ".cache", "jedi")
    try:
        for folder in _os.listdir(prepared):
            _os.makedirs(_os.path.join(home, folder), exist_ok=True)
            for name in _os.listdir(_os.path.join(prepared, folder)):
                target = _os.path.join(home, folder, name)
                if not _os.path.lexists(target):
                    _os.symlink(_os.path.join(prepared, folder, name), target)
    except OSError:
        pass
_kernelpad_link_jedi_cache()
del _kernelpad_link_jedi_cache
class _KernelpadStdin(_io.TextIOBase):
    def readable(self):
        return True
    def readline(self, size=-1):
        try:
            return input() + "\\n"
        except EOFError:
            return ""
    def read(self, size=-1):
        return "".join(iter(self.readline, ""))
_sys.stdin = _KernelpadStdin()
del _io, _os, _sys, _KernelpadStdin
"""

JAVASCRIPT_TEMPLATE = """\
// Return the answer for the given input.
function solve(items) {
  return items.reduce((total, item) => total + item, 0);
}

console.log(solve([1, 2, 3]));
"""

TYPESCRIPT_TEMPLATE = """\
// Return the answer for the given input.
function solve(items: number[]): number {
  return items.reduce((total, item) => total + item, 0);
}

console.log(solve([1, 2, 3]));
"""

JAVA_TEMPLATE = """\
// Return the answer for the given input.
int solve(int[] items) {
    return java.util.Arrays.stream(items).sum();
}

System.out.println(solve(new int[] {1, 2, 3}));
"""

CPP_TEMPLATE = """\
#include <iostream>
#include <vector>

// Return the answer for the given input.
int solve(const std::vector<int>& items) {
    int total = 0;
    for (int item : items) total += item;
    return total;
}

std::cout << solve({1, 2, 3}) << std::endl;
"""

_DENO_ENV = {"NO_COLOR": "1", "DENO_DIR": "{data_dir}/deno"}

# Deno's kernel (cli/js/jupyter_kernel.js) gets what the code prints (console.log) and its
# result from the thread that runs the code through a queue, which a task of its own drains
# onto IOPub; the reply and the idle status are sent by another task, which does not wait for
# that queue: about one run in ten, output comes after idle, and twenty lines printed come
# mostly after it, up to tens of ms late. The queue is first in, first out, and one task
# drains it in order: what this probe prints through it (core.print, the same way as
# console.log, which the code may have replaced) comes out after everything the run printed.
# Timers the run left due now (setTimeout(f, 0)) fire first, as in a console: when the event
# loop has such work, the probe prints from a timer of its own, due one timer turn (~2 ms)
# after them. It does not await that timer: Deno's kernel, interrupted while a request
# awaits, never answers that request nor takes another (its evaluation's promise is left
# pending for ever), so a timer's endless loop run while the probe awaited left a kernel
# that had to be restarted; run between requests, it ends at the interrupt, and the kernel
# takes the probe sent again after it. Once a timer was interrupted, Deno's kernel says it has
# no more work while timers are due: from a kernel's first interrupt on, ``{waits}`` is true
# and the probe always waits its timer turn. Later timers print into no run. The probe is
# silent (no count, no result) and does not set ``_``.
DENO_DONE_PROBE = (
    "((core, marker) => {"
    " if ({waits} || core.eventLoopHasMoreWork()) setTimeout(() => core.print(marker, false), 0);"
    " else core.print(marker, false);"
    ' })(Deno[Deno.internal].core, "{marker}\\n")'
)

# An exception thrown in a timer or callback, or a promise rejected with no handler, is lost by
# Deno's kernel: nothing is shown, and after one, later runs' timers printed after their run
# had ended, into no run. Handled here as a browser's console does: the error is printed to
# stderr ("Uncaught ..."), in the run that is current, and the event loop goes on. Through
# references taken now, so that code replacing console or Deno.inspect does not silence it.
DENO_STARTUP = (
    "((core, inspect) => {"
    " const report = (what, error) => core.print(`${what} ${inspect(error)}\\n`, true);"
    ' globalThis.addEventListener("error", (event) => {'
    ' event.preventDefault(); report("Uncaught", event.error); });'
    ' globalThis.addEventListener("unhandledrejection", (event) => {'
    ' event.preventDefault(); report("Uncaught (in promise)", event.reason); });'
    " })(Deno[Deno.internal].core, Deno.inspect)"
)

KNOWN_LANGUAGES: tuple[Language, ...] = (
    Language(
        id="python",
        display_name="Python 3",
        kernel_names=("python3",),
        file_extension=".py",
        template=PYTHON_TEMPLATE,
        description="CPython on the IPython kernel; input() and sys.stdin read input.",
        startup=PYTHON_STARTUP,
    ),
    Language(
        id="javascript",
        display_name="JavaScript",
        kernel_names=("deno",),
        file_extension=".js",
        template=JAVASCRIPT_TEMPLATE,
        description="JavaScript on Deno's Jupyter kernel; prompt() reads input.",
        env=_DENO_ENV,
        startup=DENO_STARTUP,
        done_probe=DENO_DONE_PROBE,
        eof="",
    ),
    Language(
        id="typescript",
        display_name="TypeScript",
        kernel_names=("deno",),
        file_extension=".ts",
        template=TYPESCRIPT_TEMPLATE,
        description="TypeScript on Deno's Jupyter kernel. Types are not checked: the kernel"
        " strips them and runs the JavaScript.",
        env=_DENO_ENV,
        startup=DENO_STARTUP,
        done_probe=DENO_DONE_PROBE,
        eof="",
    ),
    Language(
        id="java",
        display_name="Java",
        kernel_names=("java",),
        file_extension=".java",
        template=JAVA_TEMPLATE,
        description="Java 17 on the JJava kernel (JShell): methods, classes and statements at"
        " the top level; Scanner(System.in) reads input.",
        warmup="String.valueOf(1 + 1).length()",
        eof="",
    ),
    Language(
        id="cpp",
        display_name="C++",
        kernel_names=("cpp",),
        file_extension=".cpp",
        template=CPP_TEMPLATE,
        description="C++17 on clang-repl (kernelpad's kernel): includes, functions and classes"
        " stay defined across runs; std::cin reads input. A crash or an interrupt restarts the"
        " interpreter and replays earlier runs to restore their definitions.",
    ),
)

# How a line comment starts, by the kernelspec's language, for generic templates.
_COMMENT = {
    "python": "#", "r": "#", "julia": "#", "ruby": "#", "bash": "#", "sh": "#", "perl": "#",
    "javascript": "//", "typescript": "//", "java": "//", "c": "//", "c++": "//", "cpp": "//",
    "go": "//", "rust": "//", "scala": "//", "kotlin": "//", "csharp": "//", "c#": "//",
    "haskell": "--", "sql": "--", "lua": "--",
}  # fmt: skip


@dataclass(frozen=True)
class InstalledLanguage:
    """A language together with what was found for it on this machine."""

    language: Language
    kernel_name: str
    kernel_display_name: str
    version: str | None
    available: bool = True
    unavailable_reason: str | None = None
    interrupt_mode: str = "signal"
    #: ZeroMQ transport the kernel can listen on: ipykernel does Unix sockets, most others TCP.
    transport: str = "tcp"


class LanguageRegistry:
    """Maps kernelpad's language ids to the kernelspecs installed here."""

    def __init__(
        self,
        spec_manager: KernelSpecManager | None = None,
        known: tuple[Language, ...] = KNOWN_LANGUAGES,
        allow: Iterable[str] = (),
    ) -> None:
        self.spec_manager = spec_manager or KernelSpecManager()
        self._known = known
        self._allow = set(allow)
        self._installed: dict[str, InstalledLanguage] = {}

    async def refresh(self) -> None:
        """Look the kernelspecs up again (file system work, so in a thread)."""
        self._installed = await asyncio.to_thread(self._scan)

    def use_remote(self, specs: dict[str, dict[str, Any]]) -> None:
        """Offer a gateway's kernelspecs (``kernel.json`` contents by name) instead of this
        machine's: their programs run there, so none is looked for here."""
        parsed: dict[str, KernelSpec] = {}
        for name, spec in specs.items():
            try:
                parsed[name] = KernelSpec(resource_dir="", **spec)
            except Exception:
                continue
        self._installed = self._languages(parsed, remote=True)

    def _scan(self) -> dict[str, InstalledLanguage]:
        specs: dict[str, KernelSpec] = {}
        for name in sorted(self.spec_manager.find_kernel_specs()):
            try:
                specs[name] = self.spec_manager.get_kernel_spec(name)
            except Exception:  # a broken kernel.json must not hide the others
                continue
        return self._languages(specs)

    def _languages(
        self, specs: dict[str, KernelSpec], remote: bool = False
    ) -> dict[str, InstalledLanguage]:
        found: dict[str, InstalledLanguage] = {}
        claimed: set[str] = set()
        for language in self._known:
            claimed.update(language.kernel_names)
            spec_name = next((n for n in language.kernel_names if n in specs), None)
            if spec_name is None:
                missing = " or ".join(repr(n) for n in language.kernel_names)
                found[language.id] = InstalledLanguage(
                    language,
                    language.kernel_names[0],
                    language.display_name,
                    None,
                    available=False,
                    unavailable_reason=f"no kernelspec {missing} is installed (run 'make')",
                )
            else:
                found[language.id] = _installed(language, spec_name, specs[spec_name], remote)
        for name, spec in specs.items():
            if name not in claimed and name not in found:
                found[name] = _installed(_generic(name, spec), name, spec, remote)
        if self._allow:
            found = {key: value for key, value in found.items() if key in self._allow}
        return found

    def learn(self, language_id: str, language_info: dict[str, Any]) -> None:
        """Record what a started kernel reports of itself, where its kernelspec did not say."""
        item = self._installed.get(language_id)
        version = language_info.get("version")
        if item is not None and item.version is None and isinstance(version, str):
            self._installed[language_id] = dataclasses.replace(item, version=version)

    def withhold(self, why: Callable[[str], str | None]) -> None:
        """Mark unavailable the languages whose kernel's transport cannot run here, saying why
        (``why(transport)``: the sandbox's :meth:`~kernelpad.kernels.sandbox.Sandbox.unavailable`):
        listed with the reason, rather than failing at every session's start."""
        for key, item in self._installed.items():
            reason = why(item.transport) if item.available else None
            if reason:
                self._installed[key] = dataclasses.replace(
                    item, available=False, unavailable_reason=reason
                )

    def installed(self) -> list[InstalledLanguage]:
        """Every language, available or not, in a stable order."""
        return list(self._installed.values())

    def describe(self, language_id: str) -> InstalledLanguage:
        """The language ``language_id``, available or not."""
        item = self._installed.get(language_id)
        if item is None:
            offered = ", ".join(i.language.id for i in self.installed() if i.available)
            raise UnknownLanguage(
                f"Unknown language {language_id!r}; this server offers: {offered or 'none'}."
            )
        return item

    def get(self, language_id: str) -> InstalledLanguage:
        """The available language ``language_id``, or an error that says why not."""
        item = self.describe(language_id)
        if not item.available:
            raise LanguageUnavailable(
                f"{item.language.display_name} is not available on this server:"
                f" {item.unavailable_reason}."
            )
        return item


def _installed(
    language: Language, name: str, spec: KernelSpec, remote: bool = False
) -> InstalledLanguage:
    metadata = spec.metadata or {}
    ours = metadata.get("kernelpad", {}) if isinstance(metadata.get("kernelpad"), dict) else {}
    version = metadata.get("language_version")
    program = spec.argv[0] if spec.argv else ""
    reason = None
    for needed in [] if remote else [program, *ours.get("requires", [])]:
        if not _runnable(needed, spec.env.get("PATH")):
            reason = f"its kernel needs {needed!r}, which is not installed"
            break
    uses_ipykernel = any("ipykernel" in part for part in spec.argv)
    transport = ours.get("transport") or ("ipc" if uses_ipykernel else "tcp")
    return InstalledLanguage(
        language,
        name,
        spec.display_name,
        version if isinstance(version, str) else None,
        available=reason is None,
        unavailable_reason=reason,
        interrupt_mode=spec.interrupt_mode,
        transport=transport if transport in ("ipc", "tcp") else "tcp",
    )


def _runnable(program: str, path: str | None) -> bool:
    if not program:
        return False
    if os.path.isabs(program):
        return Path(program).is_file() and os.access(program, os.X_OK)
    return shutil.which(program, path=path or os.environ.get("PATH")) is not None


def _generic(name: str, spec: KernelSpec) -> Language:
    comment = _COMMENT.get((spec.language or "").lower(), "#")
    return Language(
        id=name,
        display_name=spec.display_name,
        kernel_names=(name,),
        file_extension="",
        template=f"{comment} {spec.display_name}: write your solution here, then run it.\n",
        description=f"The {spec.display_name} kernel ({name}) installed on this server.",
    )
