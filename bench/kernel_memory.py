"""How much memory an idle kernel takes, started bare and inside kernelpad, per language.

For each language (Python, JavaScript on Deno, Java on JJava, C++ on clang-repl; ``--languages``
picks some), the kernel is started twice, one after the other:

1. **bare**: jupyter_client's ``AsyncKernelManager`` from the installed kernelspec, with the
   transport and environment kernelpad gives it (as ``bench/execute_latency.py`` does for its
   floor); one trivial run, then ``--idle`` seconds of nothing;
2. **inside kernelpad**: a kernelpad server (as ``bench/execute_latency.py`` starts one, with its
   sandbox as configured, i.e. on by default) with no kernel pool, a session of the language,
   one trivial run through the HTTP API, then the same idle time.

Then the memory of the kernel's whole process tree: the bare kernel and what it started; inside
kernelpad, the kernel's keeper and everything under it (the sandbox's bubblewrap processes, the
relay of a TCP-only kernel, the kernel, JJava's second JVM, clang-repl). Each process is listed
apart, with its RSS and its PSS (``/proc/PID/smaps_rollup``, through psutil). RSS counts every
page a process maps, shared ones included (the Python binary and libraries every keeper shares
with the server and the other keepers); PSS divides each shared page among the processes that
map it, so it is the fair figure for what one more kernel costs where many run.

Each process's RSS is also split in two (``Anonymous`` in smaps_rollup, and the rest): its own
memory (heap, stacks, a JIT's code) and the pages of files it maps, mostly the code of its
program and libraries, which every process running the same program shares.
PSS with a single kernel of a language running counts all of its program's code against that
one kernel, so a third measurement starts ``--together`` kernels of the language (3 by
default) in one kernelpad server at once, as a server holding many interviews does, and
divides their trees' summed PSS among them: what each costs there.

While each kernel idles, after its first second, what its processes do is read too (see
``bench/idle_activity.py``): CPU in milliseconds per second and wakeups per second, with the
threads that woke at least once a second. An idle kernel should sleep until a request comes.

The table prints bare against inside, RSS and PSS, their ratio (goal: inside within 10% of
bare), the PSS per kernel of those started together, and the issue's goal for the inside
figure (Python <= 40, Deno <= 120, Java <= 160, C++ <= 100 MiB; the issue states it in RSS,
PSS is shown beside it). The figures go to ``bench/results/kernel_memory.json``. It exits 0
whether goals are met or not.

Run it with ``.venv/bin/python bench/kernel_memory.py [--languages python java] [--idle 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
from execute_latency import (
    LANGUAGES,
    SERVER_PROBLEMS,
    BenchLanguage,
    jupyter_kernel,
    kernelpad_server,
)
from harness import BenchError, machine_info
from idle_activity import Threads, activity, thread_counters

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "kernel_memory.json"
MIB = 2**20
# The goals for an idle kernel inside kernelpad, MiB; and how far above bare it may be.
GOALS_MIB = {"python": 40.0, "javascript": 120.0, "typescript": 120.0, "java": 160.0, "cpp": 100.0}
WITHIN = 1.10
# The idle window's first second is not read for CPU and wakeups: a kernel may still be
# finishing the run's work (a JIT's, a collector's).
SETTLE = 1.0
DEFAULT_LANGUAGES = ("python", "javascript", "java", "cpp")


@dataclass(frozen=True)
class ProcessMemory:
    """One process of a kernel's tree."""

    pid: int
    kind: str
    command: str
    rss_mib: float
    pss_mib: float
    uss_mib: float
    anon_mib: float  # its own pages; the rest of its RSS maps files (code, shared)
    # While idle (see bench/idle_activity.py): CPU, wakeups, and the threads that woke most.
    idle_cpu_ms_per_s: float = 0.0
    idle_wakeups_per_s: float = 0.0
    busy_threads: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TreeMemory:
    """A kernel's whole process tree."""

    processes: list[ProcessMemory]

    @property
    def rss_mib(self) -> float:
        return round(sum(p.rss_mib for p in self.processes), 1)

    @property
    def pss_mib(self) -> float:
        return round(sum(p.pss_mib for p in self.processes), 1)

    @property
    def uss_mib(self) -> float:
        return round(sum(p.uss_mib for p in self.processes), 1)

    @property
    def anon_mib(self) -> float:
        return round(sum(p.anon_mib for p in self.processes), 1)

    @property
    def idle_cpu_ms_per_s(self) -> float:
        return round(sum(p.idle_cpu_ms_per_s for p in self.processes), 2)

    @property
    def idle_wakeups_per_s(self) -> float:
        return round(sum(p.idle_wakeups_per_s for p in self.processes), 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rss_mib": self.rss_mib,
            "pss_mib": self.pss_mib,
            "uss_mib": self.uss_mib,
            "anon_mib": self.anon_mib,
            "idle_cpu_ms_per_s": self.idle_cpu_ms_per_s,
            "idle_wakeups_per_s": self.idle_wakeups_per_s,
            "processes": [asdict(p) for p in self.processes],
        }


def kind_of(cmdline: list[str], name: str) -> str:
    """What a process of a kernel's tree is, from its command line."""
    line = " ".join(cmdline)
    base = Path(cmdline[0]).name if cmdline else name
    # bubblewrap's command line names what it runs (the kernel, a relay): it goes first.
    if base == "bwrap" or name == "bwrap":
        return "bwrap"
    if "kernelpad.kernels.keeper" in line:
        return "keeper"
    if "kernelpad.kernels.relay" in line:
        return "relay (asyncio, before issue 20)"
    if "ipykernel_launcher" in line:
        return "kernel (ipykernel)"
    if "kernelpad.kernels.cpp" in line:
        return "kernel (C++, ipykernel)"
    if "clang-repl" in base:
        return "clang-repl"
    if base == "deno" or name == "deno":
        return "kernel (deno)"
    if base == "java" or name == "java":
        if "jjava-launcher.jar" in line:
            return "JJava launcher JVM"
        if "jjava.jar" in line or "JJava" in line:
            return "JJava kernel JVM"
        return "JShell remote JVM"
    return base or name


def anonymous_mib(pid: int) -> float:
    """The process's anonymous memory (heap, stacks, JIT code): the part of its RSS that maps
    no file."""
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            if line.startswith("Anonymous:"):
                return round(int(line.split()[1]) * 1024 / MIB, 1)
    return 0.0


def tree_threads(root: int) -> dict[int, Threads]:
    """The thread counters of ``root`` and all its descendants, by process."""
    top = psutil.Process(root)
    return {proc.pid: thread_counters(proc.pid) for proc in [top, *top.children(recursive=True)]}


def tree_memory(root: int, since: dict[int, Threads], seconds: float) -> TreeMemory:
    """The memory of ``root`` and all its descendants, each process apart, and what each did
    in the ``seconds`` since the thread counters ``since``."""
    top = psutil.Process(root)
    processes: list[ProcessMemory] = []
    for proc in [top, *top.children(recursive=True)]:
        try:
            with proc.oneshot():
                cmdline = proc.cmdline()
                info = proc.memory_full_info()
                name = proc.name()
            anon = anonymous_mib(proc.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, FileNotFoundError):
            continue
        processes.append(
            ProcessMemory(
                proc.pid,
                kind_of(cmdline, name),
                " ".join(cmdline)[:160],
                round(info.rss / MIB, 1),
                round(info.pss / MIB, 1),
                round(info.uss / MIB, 1),
                anon,
                *_idle(since.get(proc.pid, {}), thread_counters(proc.pid), seconds),
            )
        )
    return TreeMemory(processes)


def _idle(before: Threads, after: Threads, seconds: float) -> tuple[float, float, dict[str, float]]:
    done = activity(before, after, seconds)
    return done.cpu_ms_per_s, done.wakeups_per_s, done.busy_threads


# Bare: the kernel from its kernelspec, through jupyter_client


async def _bare(lang: BenchLanguage, workdir: Path, idle: float) -> TreeMemory:
    async with jupyter_kernel(lang, workdir, "bare") as kc:
        reply = await kc.execute_interactive(lang.code, timeout=60, output_hook=lambda msg: None)
        if reply["content"]["status"] != "ok":
            raise BenchError(f"{lang.id}: the bare kernel's trivial run ended {reply['content']}")
        # The manager launched the kernel's command; jupyter_client keeps its pid on the
        # provisioner, which the client does not reach: the kernel is this process's child.
        children = psutil.Process().children()
        kernels = [c for c in children if str(workdir) in " ".join(c.cmdline())]
        if len(kernels) != 1:
            raise BenchError(f"{lang.id}: found {len(kernels)} bare kernel processes, not one")
        settle = min(SETTLE, idle / 2)
        await asyncio.sleep(settle)
        since = tree_threads(kernels[0].pid)
        await asyncio.sleep(idle - settle)
        return tree_memory(kernels[0].pid, since, idle - settle)


def measure_bare(lang: BenchLanguage, idle: float) -> TreeMemory:
    # Kernels' Unix socket paths must stay short: a folder directly under the temp dir.
    with tempfile.TemporaryDirectory(prefix="kpm-") as tmp:
        return asyncio.run(_bare(lang, Path(tmp), idle))


# Inside kernelpad: the session's kernel, its keeper and all under it


def measure_inside(lang: BenchLanguage, idle: float, count: int = 1) -> list[TreeMemory]:
    """``count`` sessions of the language at once on one server (no pool), each after a trivial
    run and the idle time: each kernel's tree."""
    with kernelpad_server(lang, pool_size=0) as api:
        sessions = [api.create_session(lang.id) for _ in range(count)]
        for session_id, _ in sessions:
            api.execute(session_id, lang.code)
        server = _server_process(api.port)
        keepers = [
            p
            for p in server.children()
            if any("kernelpad.kernels.keeper" in part for part in p.cmdline())
        ]
        if len(keepers) != count:
            raise BenchError(
                f"{lang.id}: found {len(keepers)} keepers under the server, not {count}"
            )
        settle = min(SETTLE, idle / 2)
        time.sleep(settle)
        since = [tree_threads(keeper.pid) for keeper in keepers]
        time.sleep(idle - settle)
        trees = [tree_memory(k.pid, s, idle - settle) for k, s in zip(keepers, since, strict=True)]
        for session_id, token in sessions:
            api.end_session(session_id, token)
        return trees


def _server_process(port: int) -> psutil.Process:
    for child in psutil.Process().children():
        if str(port) in child.cmdline():
            return child
    raise BenchError(f"no kernelpad server on port {port} among this process's children")


# One language


def measure_language(lang: BenchLanguage, idle: float, together: int) -> dict[str, Any]:
    print(f"{lang.id}: bare kernel ...", flush=True)
    bare = measure_bare(lang, idle)
    print(f"{lang.id}: inside kernelpad ...", flush=True)
    (inside,) = measure_inside(lang, idle)
    print(f"{lang.id}: {together} kernels inside kernelpad at once ...", flush=True)
    trees = measure_inside(lang, idle, together)
    goal = GOALS_MIB[lang.id]
    rss_ratio = round(inside.rss_mib / bare.rss_mib, 3)
    pss_ratio = round(inside.pss_mib / bare.pss_mib, 3)
    pss_each = round(sum(t.pss_mib for t in trees) / together, 1)
    return {
        "kernel_name": lang.kernel_name,
        "bare": bare.as_dict(),
        "inside": inside.as_dict(),
        "together": {
            "kernels": together,
            "pss_mib_per_kernel": pss_each,
            "anon_mib_per_kernel": round(sum(t.anon_mib for t in trees) / together, 1),
            "trees": [t.as_dict() for t in trees],
        },
        "ratios": {"rss_inside_over_bare": rss_ratio, "pss_inside_over_bare": pss_ratio},
        "goal_mib": goal,
        "verdicts": {
            "rss_within_10_percent": rss_ratio <= WITHIN,
            "pss_within_10_percent": pss_ratio <= WITHIN,
            "rss_inside_under_goal": inside.rss_mib <= goal,
            "pss_inside_under_goal": inside.pss_mib <= goal,
            "pss_together_under_goal": pss_each <= goal,
        },
    }


# Report


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_report(results: dict[str, Any]) -> None:
    info = results["machine"]
    print(
        f"\nIdle kernel memory, MiB  ({info['timestamp']}, {info['cpu_count']} CPUs,"
        f" load {info['load_average_1m_at_end']} at the end, idle {results['settings']['idle']} s)"
    )
    for lang_id, r in results["languages"].items():
        print(f"\n{lang_id} (kernelspec {r['kernel_name']})")
        for where in ("bare", "inside"):
            tree = r[where]
            print(
                f"  {where:6}  {'RSS':>7} {'PSS':>7} {'USS':>7} {'anon':>7} {'files':>7}"
                f"  {'idle: CPU ms/s':>14} {'wakeups/s':>9}"
            )
            for p in tree["processes"]:
                print(
                    f"    {p['kind'][:26]:26} {p['rss_mib']:7.1f} {p['pss_mib']:7.1f}"
                    f" {p['uss_mib']:7.1f} {p['anon_mib']:7.1f}"
                    f" {p['rss_mib'] - p['anon_mib']:7.1f}"
                    f"  {p['idle_cpu_ms_per_s']:14.2f} {p['idle_wakeups_per_s']:9.1f}"
                    f"  pid {p['pid']}"
                )
                if p["busy_threads"]:
                    woke = ", ".join(f"{name} {rate:g}" for name, rate in p["busy_threads"].items())
                    print(f"      threads waking at least once a second: {woke}")
            print(
                f"    {'total':26} {tree['rss_mib']:7.1f} {tree['pss_mib']:7.1f}"
                f" {tree['uss_mib']:7.1f} {tree['anon_mib']:7.1f}"
                f" {tree['rss_mib'] - tree['anon_mib']:7.1f}"
                f"  {tree['idle_cpu_ms_per_s']:14.2f} {tree['idle_wakeups_per_s']:9.1f}"
            )
        together = r["together"]
        print(
            f"  {together['kernels']} at once inside: PSS {together['pss_mib_per_kernel']:.1f},"
            f" anon {together['anon_mib_per_kernel']:.1f} MiB per kernel"
        )
    print(
        f"\n{'language':11} {'bare RSS':>9} {'inside RSS':>11} {'ratio':>6}"
        f" {'bare PSS':>9} {'inside PSS':>11} {'ratio':>6} {'together':>9} {'goal':>6}"
        "  within 10% (RSS/PSS)  goal (RSS/PSS/together)"
    )
    for lang_id, r in results["languages"].items():
        v = r["verdicts"]
        print(
            f"{lang_id:11} {r['bare']['rss_mib']:9.1f} {r['inside']['rss_mib']:11.1f}"
            f" {r['ratios']['rss_inside_over_bare']:6.2f}"
            f" {r['bare']['pss_mib']:9.1f} {r['inside']['pss_mib']:11.1f}"
            f" {r['ratios']['pss_inside_over_bare']:6.2f}"
            f" {r['together']['pss_mib_per_kernel']:9.1f} {r['goal_mib']:6.0f}"
            f"  {_mark(v['rss_within_10_percent']):>6}/{_mark(v['pss_within_10_percent']):<14}"
            f"  {_mark(v['rss_inside_under_goal'])}/{_mark(v['pss_inside_under_goal'])}"
            f"/{_mark(v['pss_together_under_goal'])}"
        )
    print(
        f"\n{'idle':11} {'CPU ms/s, bare':>15} {'inside':>7} {'wakeups/s, bare':>16} {'inside':>7}"
    )
    for lang_id, r in results["languages"].items():
        bare, inside = r["bare"], r["inside"]
        print(
            f"{lang_id:11} {bare['idle_cpu_ms_per_s']:15.2f} {inside['idle_cpu_ms_per_s']:7.2f}"
            f" {bare['idle_wakeups_per_s']:16.1f} {inside['idle_wakeups_per_s']:7.1f}"
        )
    if SERVER_PROBLEMS:
        print(f"\nkernelpad logged {len(SERVER_PROBLEMS)} warning(s) or error(s):")
        for line in SERVER_PROBLEMS[:20]:
            print(f"  {line}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--languages",
        nargs="+",
        default=list(DEFAULT_LANGUAGES),
        metavar="LANG",
        help=f"languages to measure, space or comma separated (default:"
        f" {' '.join(DEFAULT_LANGUAGES)}; typescript runs on the same kernel as javascript)",
    )
    parser.add_argument(
        "--idle", type=float, default=5.0, help="seconds idle after the run (default 5)"
    )
    parser.add_argument(
        "--together",
        type=int,
        default=3,
        help="kernels of a language started at once for the PSS per kernel (default 3)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="where the JSON goes")
    args = parser.parse_args()
    chosen = [name.strip() for item in args.languages for name in item.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in LANGUAGES]
    if unknown or not chosen:
        parser.error(f"--languages: choose among {', '.join(LANGUAGES)}")
    args.languages = list(dict.fromkeys(chosen))
    if args.idle < 0:
        parser.error("--idle must not be negative")
    if args.together < 1:
        parser.error("--together must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    try:
        languages = {
            name: measure_language(LANGUAGES[name], args.idle, args.together)
            for name in args.languages
        }
    except BenchError as exc:
        sys.exit(f"benchmark aborted: {exc}")
    results = {
        "machine": machine_info(jupyter_client=version("jupyter_client")),
        "settings": {
            "languages": args.languages,
            "idle": args.idle,
            "together": args.together,
            "duration_s": round(time.monotonic() - started, 1),
        },
        "languages": languages,
        "goals_mib": GOALS_MIB,
        "within": WITHIN,
        "kernelpad_log_problems": SERVER_PROBLEMS,
    }
    print_report(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nFigures written to {args.output}")


if __name__ == "__main__":
    main()
