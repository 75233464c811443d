"""Install the kernelspecs of the kernels kernelpad supports into this environment.

``python -m kernelpad.kernels.install`` (run by ``make``) writes them under ``sys.prefix``, where
jupyter_client looks first for a virtualenv's kernels:

* ``python3``: ipykernel's kernelspec, started by :mod:`kernelpad.kernels.ipykernel_start`
  (without the debugger: 8 MiB of every idle kernel's RSS, 51 -> 43 MiB here; of
  jupyter_client's package only what a kernel uses: 1.5 MiB) and without IPython's history
  database (``HistoryManager.enabled=False``: 1.5 MiB, and a thread writing each cell's input to
  a SQLite file in a box's home that is removed with the box; a session's ``In``, ``_i`` and
  ``%history`` stay, kept in memory). ``ipykernel_launcher`` stays in the command line;
* Python completions: jedi's cache of what a first Tab parses, prepared once (see
  ``JEDI_WARMUP``), so that the first Tab in a kernel's new home does not parse it again;
* ``deno``: Deno's built-in Jupyter kernel, for JavaScript and TypeScript. ``deno jupyter
  --install`` only writes to ``$HOME``, so the spec is written here, with interrupts by message
  (a SIGINT kills the Deno kernel; an ``interrupt_request`` stops a busy loop and keeps state) and
  ``NO_COLOR`` (Deno colours plain-text results otherwise). It runs a copy of Deno's program
  without its benchmark buffer (``DENO_BENCH_BUFFER``): 150 MiB less per kernel;
* ``java``: JJava's kernelspec, which the ``jjava`` package installs as a launcher (a JVM whose
  only work is to start the kernel's JVM with ``JJAVA_JVM_OPTS`` and wait for it: 44 MiB of RSS
  for nothing). The spec starts the kernel's JVM itself, as the launcher would, from one JDK
  (``JAVA_HOME`` and ``PATH`` pinned), with JVM options that halve its start time and keep its
  idle heap small, and kernelpad's shell channel before JJava's own (see
  :mod:`kernelpad.kernels.jjava.jvm`): requests are seen at once, not polled for every 50 ms;
* the keeper's watch in C (``keeper_watch.c``, see :mod:`kernelpad.kernels.keeper`), built with
  the machine's C compiler where it has one: ~1 MiB of RSS per kernel instead of ~10.

Each step that cannot be done (no JDK on the machine, say) is reported and skipped: the language
is then listed as unavailable, with the reason, rather than failing at a session's start.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from kernelpad.kernels.jjava.jvm import find_java_home, java_argv, jjava_shell_channel


def kernels_dir(prefix: Path) -> Path:
    return prefix / "share" / "jupyter" / "kernels"


def prepared_dir(prefix: Path) -> Path:
    """What the installer prepares for the kernels (jedi's cache, Deno's copy); read-only in
    their boxes."""
    return prefix / "share" / "kernelpad"


# The watch's sources, all three in the digest a build is named after: the program, its relay,
# and what they share.
KEEPER_WATCH_SOURCES = tuple(
    Path(__file__).with_name(name)
    for name in ("keeper_watch.c", "keeper_relay.c", "keeper_watch.h")
)
C_COMPILERS = ("cc", "gcc", "clang")


@functools.cache
def _keeper_watch_digest() -> str:
    # Once a process: every kernel's start asks, and the sources are this version's.
    digest = hashlib.sha256()
    for source in KEEPER_WATCH_SOURCES:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def keeper_watch_path(prefix: Path | None = None) -> Path:
    """Where the watch in C built from this version's sources is (named after them, so that
    a keeper never runs a watch built from another version of them)."""
    digest = _keeper_watch_digest()
    folder = prepared_dir(Path(sys.prefix) if prefix is None else prefix) / "keeper"
    return folder / f"watch-{digest}"


def c_compiler() -> str | None:
    """The machine's C compiler, if it has one."""
    return next(filter(None, map(shutil.which, C_COMPILERS)), None)


def build_keeper_watch(prefix: Path) -> str:
    program = keeper_watch_path(prefix)
    folder = program.parent
    compiler = c_compiler()
    if compiler is None:
        return "keeper: watches in Python (no C compiler to build its watch)"
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "watch.partial"
    flags = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(partial)]
    # Static where the C library allows it: the C library's pages are then the program's own,
    # shared by every keeper, not mapped whole in each (RSS 0.75 MiB instead of 1.35).
    for linking in (["-static"], []):
        built = subprocess.run(
            [
                compiler,
                *flags,
                *linking,
                *(str(f) for f in KEEPER_WATCH_SOURCES if f.suffix == ".c"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode == 0:
            break
    else:
        partial.unlink(missing_ok=True)
        return f"keeper: watches in Python ({compiler} failed: {built.stderr.strip()})"
    partial.replace(program)  # a keeper starting meanwhile runs the old build or the new, whole
    for other in folder.iterdir():
        if other != program:  # an earlier version's, which no keeper will run again
            other.unlink()
    return f"keeper: its watch in C, {program}"


def python_argv(python: str) -> list[str]:
    return [
        python,
        "-m",
        "kernelpad.kernels.ipykernel_start",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--HistoryManager.enabled=False",
    ]


def install_python(prefix: Path) -> str:
    from ipykernel.kernelspec import install

    install(prefix=str(prefix), kernel_name="python3", display_name="Python 3")
    spec_file = kernels_dir(prefix) / "python3" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"] = python_argv(spec["argv"][0])
    spec.get("metadata", {}).pop("debugger", None)
    _write_spec(spec_file.parent, spec)
    return "python3: ipykernel, without its debugger and history database"


# What the first Tab of a Python session parses (the builtins' and common modules' stubs),
# parsed here once into jedi's cache under ``share/kernelpad/jedi``: each kernel's box links
# it into its new home (languages.PYTHON_STARTUP), and the first answer comes from the cache.
JEDI_WARMUP = """
import jedi
namespace = {}
exec("import collections, dataclasses, functools, heapq, itertools, json, math, re", namespace)
exec("import typing", namespace)
for code in ("[].ap", "''.sp", "{}.ke", "pri", "import o", "collections.de", "dataclasses.da",
             "functools.lr", "heapq.he", "itertools.pe", "json.du", "math.sq", "re.co",
             "typing.Op", "import os\\nos.pa", "import sys\\nsys.ar"):
    jedi.Interpreter(code, [namespace]).complete()
"""


def prepare_completions(prefix: Path) -> str:
    cache = prepared_dir(prefix)
    shutil.rmtree(cache / "jedi", ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run(
        [str(prefix / "bin" / "python"), "-I", "-c", JEDI_WARMUP], env=env, check=False
    )
    if done.returncode != 0:
        return "python3 completions: not prepared (jedi failed); the first Tab parses anew"
    return f"python3 completions: jedi's cache prepared in {cache / 'jedi'}"


# Deno's benchmark module (cli/js/40_bench.js), which Deno loads into its REPL and Jupyter
# kernel for Deno.bench, makes this array of ten million when it loads, to reuse across
# benchmarks. V8 fills its 80 MB at once, and Deno's Jupyter kernel runs two isolates (the
# user's code, and the kernel's own ZeroMQ side), each with its copy: 152 of an idle kernel's
# 207 MiB, for benchmarks an interview never runs. The kernel runs a copy of Deno's program in
# which that line makes an empty array instead, of the same length (nothing else in the program
# moves); a benchmark's samples then fill it as they come, as they fill the first one's. A Deno
# without the line (fixed where it comes from), or with it more than once, runs as it is.
DENO_BENCH_BUFFER = b"let all = new Array(allMaxLength);"
DENO_BENCH_BUFFER_LAZY = b"let all = [];".ljust(len(DENO_BENCH_BUFFER))


def lean_deno(deno: Path, folder: Path) -> Path | None:
    """A copy of ``deno`` in ``folder`` without the benchmark buffer, or None where ``deno``
    does not hold the line once (and no copy: an earlier Deno's would be run no more)."""
    program = deno.read_bytes()
    lean = folder / "deno"
    if program.count(DENO_BENCH_BUFFER) != 1:
        lean.unlink(missing_ok=True)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "deno.partial"
    partial.write_bytes(program.replace(DENO_BENCH_BUFFER, DENO_BENCH_BUFFER_LAZY))
    partial.chmod(0o755)
    partial.replace(lean)  # a kernel starting meanwhile runs the old copy or the new, whole
    return lean


def install_deno(prefix: Path) -> str:
    deno = Path(prefix) / "bin" / "deno"
    if not deno.is_file():
        found = shutil.which("deno")
        if not found:
            return "deno: skipped, no deno program (pip install deno)"
        deno = Path(found)
    lean = lean_deno(deno, prepared_dir(prefix) / "deno")
    spec = {
        "argv": [str(lean or deno), "jupyter", "--kernel", "--conn", "{connection_file}"],
        "display_name": "Deno",
        "language": "typescript",
        "interrupt_mode": "message",
        "env": {"NO_COLOR": "1"},
        "metadata": {"kernelpad": {"installed_by": "kernelpad"}},
    }
    _write_spec(kernels_dir(prefix) / "deno", spec)
    if lean is None:
        return f"deno: {deno} (as it is: its benchmark buffer's line is not there once)"
    return f"deno: {lean}, a copy of {deno} without its benchmark buffer"


def install_cpp(prefix: Path) -> str:
    from kernelpad.kernels.cpp.repl import CLANG_REPL

    spec = {
        "argv": [sys.executable, "-m", "kernelpad.kernels.cpp", "-f", "{connection_file}"],
        "display_name": "C++17 (clang-repl)",
        "language": "c++",
        "interrupt_mode": "message",
        "metadata": {"kernelpad": {"transport": "ipc", "requires": [CLANG_REPL]}},
    }
    _write_spec(kernels_dir(prefix) / "cpp", spec)
    found = "" if Path(CLANG_REPL).is_file() else " (clang-repl missing: install clang-tools-19)"
    return f"cpp: kernelpad's C++ kernel{found}"


def install_java(prefix: Path) -> str:
    spec_dir = kernels_dir(prefix) / "java"
    spec_file = spec_dir / "kernel.json"
    if not spec_file.is_file():
        return "java: skipped, no JJava kernelspec (pip install jjava)"
    java_home = find_java_home()
    if java_home is None:
        return "java: skipped, no JDK found (install openjdk-17-jdk-headless)"
    jar = spec_dir / "jjava.jar"
    if not jar.is_file():
        return "java: skipped, no jjava.jar beside JJava's kernelspec (pip install jjava)"
    spec = json.loads(spec_file.read_text())
    java = java_home / "bin" / "java"
    shell = jjava_shell_channel(java_home / "bin", jar, prepared_dir(prefix) / "jjava")
    spec["argv"] = java_argv(java, shell)
    env = {key: value for key, value in spec.get("env", {}).items() if key != "JJAVA_JVM_OPTS"}
    spec["env"] = {
        **env,
        "JAVA_HOME": str(java_home),
        "PATH": f"{java_home / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    }
    spec["interrupt_mode"] = "message"
    _write_spec(spec_dir, spec)
    if shell is None:
        return f"java: {java} (JJava's shell channel as it is: kernelpad's did not compile)"
    return f"java: {java}, with kernelpad's shell channel from {shell.folder}"


def _write_spec(spec_dir: Path, spec: Mapping[str, object]) -> None:
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m kernelpad.kernels.install",
        description="Install the kernelspecs of kernelpad's languages into an environment.",
    )
    parser.add_argument(
        "--prefix", type=Path, default=Path(sys.prefix), help="default: this environment"
    )
    args = parser.parse_args(argv)
    for step in (
        install_python,
        prepare_completions,
        install_deno,
        install_java,
        install_cpp,
        build_keeper_watch,
    ):
        print(step(args.prefix))


if __name__ == "__main__":
    main()
