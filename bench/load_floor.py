"""The floor under ``load.py``: the same runs on the same kernels, with no kernelpad at all.

For each number of sessions S (``--sessions``, default 1, 50, 100 and 150) this starts, bare
(jupyter_client from each kernelspec, no sandbox, no server), the kernels S interviews of
``load.py`` hold: a Python kernel per interview and a Deno kernel per third one. Then, for
``--duration`` seconds, it runs ``load.py``'s code in them at ``load.py``'s pace: each
"interview" runs its languages in turn every ``--run-every`` seconds or so (0.5 to 1.5 times
it), the one interview of the smallest S every ``--baseline-run-every`` seconds. A run is timed
from its ``execute_request`` to its reply and idle status; a Deno run also waits for the same
done probe kernelpad sends (``kernelpad.kernels.done_probe``), as ``execute_latency.py``'s
"settled" runs do. Nobody types: no documents, no storage, no fan-out.

So the p99 here is what the kernels alone give at each S on this machine, and its ratio to
the smallest S is the best that ``load.py``'s 2x rule could find with a server that cost
nothing. The client (one process, one event loop) and the machine's CPU are printed beside it,
the runs' time by the kernels' own clocks (from each run's busy status to its idle one, by the
dates on them, as ``load.py`` reports kernelpad's), and ``load.py``'s figures at the same S
(``--compare``, default ``bench/results/load.json``).

Run it with ``.venv/bin/python bench/load_floor.py [--sessions 1,50,150]``. 150 interviews hold
200 kernels, about 17 GB: the machine needs the memory ``load.py`` needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import load
import psutil
from execute_latency import LANGUAGES, DirectRuns, jupyter_kernel
from harness import (
    BenchError,
    add_client_loop,
    free_port,
    machine_info,
    run_on_kernelpads_loop,
)
from jupyter_client.asynchronous.client import AsyncKernelClient
from load import CODE, RESULTS, baselines, summary
from server_floor import serving

# Kernels started at once: more only make each start slower on two cores.
STARTING_AT_ONCE = 8
# Each kernel's first runs (imports, JIT) are not the interview's steady state.
WARM_RUNS = 3
QUIET_CPU_PERCENT = 15.0  # the machine (all cores, % of one) before the timed phase
QUIET_TIMEOUT = 120.0
# The server floor's database, in the phase's folder, with --stored.
FLOOR_DATABASE = "floor.sqlite3"


@dataclasses.dataclass(eq=False)
class Interview:
    """One interview's kernels, as ``load.py`` gives them (Python; every third, Deno too)."""

    index: int
    runs: dict[str, DirectRuns]
    times: dict[str, list[float]] = dataclasses.field(default_factory=dict)


async def start_kernels(
    stack: contextlib.AsyncExitStack, workdir: Path, count: int
) -> list[Interview]:
    """Start the kernels of ``count`` interviews, a few at a time; each is shut down when
    ``stack`` closes."""
    gate = asyncio.Semaphore(STARTING_AT_ONCE)

    async def kernel(language: str, name: str) -> DirectRuns:
        lang = dataclasses.replace(LANGUAGES[language], code=CODE[language])
        async with gate:
            kc: AsyncKernelClient = await stack.enter_async_context(
                jupyter_kernel(lang, workdir, name)
            )
        runs = DirectRuns(kc, lang)
        for _ in range(WARM_RUNS):
            await runs.settled(False)
        return runs

    async def interview(index: int) -> Interview:
        languages = ("python", "javascript") if index % 3 == 0 else ("python",)
        kernels = await asyncio.gather(*(kernel(lang, f"k{index}-{lang}") for lang in languages))
        return Interview(index, dict(zip(languages, kernels, strict=True)))

    return list(await asyncio.gather(*(interview(i) for i in range(count))))


async def run_on(interview: Interview, every: float, stop: asyncio.Event) -> None:
    """``load.py``'s pace: the interview's languages in turn, 0.5 to 1.5 ``every`` apart."""
    languages = list(interview.runs)
    turn = 0
    with contextlib.suppress(TimeoutError):  # a long ``every`` must not hold the phase's end
        await asyncio.wait_for(stop.wait(), random.uniform(0, every))
    while not stop.is_set():
        language = languages[turn % len(languages)]
        turn += 1
        elapsed = await interview.runs[language].settled(True)
        interview.times.setdefault(language, []).append(elapsed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), random.uniform(0.5, 1.5) * every)


async def machine_quiet(percent: float, timeout: float) -> float:
    """Seconds until the whole machine uses under ``percent`` of one core over a second."""
    began = time.monotonic()
    cores = psutil.cpu_count() or 1
    psutil.cpu_percent()
    while time.monotonic() - began < timeout:
        await asyncio.sleep(1.0)
        if psutil.cpu_percent() * cores < percent:
            break
    return time.monotonic() - began


@contextlib.asynccontextmanager
async def cpu_meter(server: int | None = None) -> AsyncIterator[dict[str, float]]:
    """The client's, the kernels' (its children but ``server``), ``server``'s and the machine's
    mean CPU (% of one core) over the block, filled in when it ends."""
    me = psutil.Process()
    cores = psutil.cpu_count() or 1

    def children_seconds() -> tuple[float, float]:
        """CPU seconds of the children but ``server``, and of ``server``."""
        kernels = its = 0.0
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                if child.pid == server:
                    its += times.user + times.system
                else:
                    kernels += times.user + times.system
        return kernels, its

    figures: dict[str, float] = {}
    mine, (theirs, its) = me.cpu_times(), children_seconds()
    psutil.cpu_percent()
    began = time.monotonic()
    yield figures
    elapsed = time.monotonic() - began
    now = me.cpu_times()
    figures["client_cpu_percent"] = round(
        100 * (now.user + now.system - mine.user - mine.system) / elapsed, 1
    )
    kernels, server_seconds = children_seconds()
    figures["kernels_cpu_percent"] = round(100 * (kernels - theirs) / elapsed, 1)
    if server is not None:
        figures["server_cpu_percent"] = round(100 * (server_seconds - its) / elapsed, 1)
    figures["machine_cpu_percent"] = round(psutil.cpu_percent() * cores, 1)


async def phase(
    sessions: int, duration: float, every: float, edit_rate: float | None, stored: bool = False
) -> dict[str, Any]:
    """One S: its kernels started, then ``duration`` seconds of runs, straight to them or (with
    an ``edit_rate``) through the server floor with two people typing per interview (``stored``:
    the server stores each edit and run before anyone sees it)."""
    print(f"\n{sessions} session(s):", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="kpfloor-"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            began = time.perf_counter()
            interviews = await start_kernels(stack, workdir, sessions)
            kernels = sum(len(i.runs) for i in interviews)
            print(f"  {kernels} kernels started in {time.perf_counter() - began:.1f} s")
            quiet = await machine_quiet(QUIET_CPU_PERCENT, QUIET_TIMEOUT)
            print(f"  machine quiet (under {QUIET_CPU_PERCENT:g}% CPU) after {quiet:.1f} s")
            if edit_rate is None:
                stop = asyncio.Event()
                async with cpu_meter() as cpu:
                    tasks = [asyncio.create_task(run_on(i, every, stop)) for i in interviews]
                    await asyncio.sleep(duration)
                    stop.set()
                    await asyncio.gather(*tasks)
                extra: dict[str, Any] = {}
            else:
                cpu, extra = await through_server(
                    workdir, interviews, duration, every, edit_rate, stored
                )
            late = sum(runs.settled_late.seen for i in interviews for runs in i.runs.values())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    by_language: dict[str, list[float]] = {}
    for interview in interviews:
        for language, times in interview.times.items():
            by_language.setdefault(language, []).extend(times)
    runs = {lang: summary(times) for lang, times in by_language.items()}
    # By the kernels' own clocks (from each run's busy status to its idle one), as kernelpad's
    # /metrics gives them to load.py: bare kernels only (through the server, none are read).
    own = summary([t for i in interviews for r in i.runs.values() for t in r.kernel_times])
    result = {
        "sessions": sessions,
        "kernels": kernels,
        "runs": {
            "total": summary([t for times in by_language.values() for t in times]),
            "by_language": runs,
        },
        "kernels_own_time": own,
        # Deno's runs whose output came after their idle status (the done probe caught it).
        "runs_with_late_messages": late,
        **cpu,
        **extra,
    }
    print(
        "  "
        + ", ".join(f"{lang} p50 {f['p50_ms']} p99 {f['p99_ms']} ms" for lang, f in runs.items())
        + f"; CPU: machine {cpu['machine_cpu_percent']}%, kernels {cpu['kernels_cpu_percent']}%,"
        f" client {cpu['client_cpu_percent']}%"
        + (f", server {cpu['server_cpu_percent']}%" if "server_cpu_percent" in cpu else ""),
        flush=True,
    )
    if own["count"]:
        print(
            f"  the kernels' own time by their clocks: p50 {own['p50_ms']} ms, p99"
            f" {own['p99_ms']} ms",
            flush=True,
        )
    if extra:
        print(
            f"  edits: {extra['edits_sent']} sent, {extra['edits_lost']} lost, fan-out p99"
            f" {extra['edit_fanout']['p99_ms']} ms; texts differing {extra['texts_differing']},"
            f" errors {extra['errors']}; the client's loop lag p99"
            f" {extra['client_loop_lag']['p99_ms']} ms"
            + (
                f"; stored: {extra['stored_updates']} updates, {extra['stored_runs']} runs"
                if "stored_runs" in extra
                else ""
            ),
            flush=True,
        )
    return result


@contextlib.asynccontextmanager
async def floor_server(workdir: Path, stored: bool) -> AsyncIterator[tuple[int, int]]:
    """``load_server_floor.py`` on the kernels whose connection files are in ``workdir``, in a
    session of its own (as ``load.py`` starts kernelpad); its port and pid once it answers.
    ``stored``: it stores what it relays and tells, in a database in ``workdir``."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("load_server_floor.py"))]
    command += ["--port", str(port), "--kernels", str(workdir)]
    if stored:
        command += ["--store", str(workdir / FLOOR_DATABASE)]
    async with serving(command, workdir / "server.log", QUIET_TIMEOUT, new_session=True) as proc:
        yield port, proc.pid


async def through_server(
    workdir: Path,
    interviews: list[Interview],
    duration: float,
    every: float,
    edit_rate: float,
    stored: bool,
) -> tuple[dict[str, float], dict[str, Any]]:
    """``duration`` seconds of ``load.py``'s interviews, with its own clients, through the
    server floor on these kernels: two typists per interview, ``edit_rate`` edits a second
    each, and the runs at their pace. Each run's time goes to its interview's ``times``; the
    CPU figures and what the typing gave are returned (``stored``: and how many updates and
    runs the server stored)."""
    for interview in interviews:
        for runs in interview.runs.values():
            # The server's own clients take over: these would only queue up its outputs.
            runs.kc.stop_channels()
    async with floor_server(workdir, stored) as (port, pid):
        clients = [load.Interview(i.index, f"k{i.index}", "", tuple(i.runs)) for i in interviews]
        for client in clients:
            client.add_clients({}, {})  # nobody's identity is checked there
        await load.connect(port, clients)
        stop = asyncio.Event()
        lags: list[float] = []
        async with cpu_meter(pid) as cpu:
            work = [load.type_on(c, t, edit_rate, stop) for c in clients for t in c.typists]
            work += [load.run_on(c, every, stop) for c in clients]
            tasks = [asyncio.create_task(w) for w in (*work, load.loop_lag(lags, stop))]
            await asyncio.sleep(duration)
            stop.set()
            await asyncio.gather(*tasks)
        lost = await load.edits_lost(clients)
        for client in clients:
            client.close()
    for interview, client in zip(interviews, clients, strict=True):
        for run in client.runs:
            interview.times.setdefault(run["language"], []).append(run["latency"])
    typed = {
        "edits_sent": sum(t.sent for c in clients for t in c.typists),
        "edits_lost": lost,
        "texts_differing": sum(c.typists[0].text != c.typists[1].text for c in clients),
        "errors": sum(len(c.errors) for c in clients),
        "edit_fanout": summary([f for c in clients for f in c.fanout]),
        "client_loop_lag": summary(lags),
    }
    if stored:  # what the server committed: every edit relayed and every run told
        with contextlib.closing(sqlite3.connect(workdir / FLOOR_DATABASE)) as db:
            for table in ("updates", "runs"):
                typed[f"stored_{table}"] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return cpu, typed


def compare(results: list[dict[str, Any]], kernelpad: list[dict[str, Any]]) -> list[str]:
    """Per S and language: the floor's p99 / its p99 at the smallest S, and kernelpad's (from
    ``load.json``, where it has that S)."""
    base = baselines(results)
    theirs = {r["sessions"]: r for r in kernelpad}
    kernelpad_base = baselines(kernelpad) if kernelpad else {}
    lines = []
    for r in results:
        for language, figures in r["runs"]["by_language"].items():
            line = (
                f"  {r['sessions']:>4} {language:<10} floor p99 {figures['p99_ms']:>7} ms"
                f" = {figures['p99_ms'] / base[language]:.2f}x its p99 at {results[0]['sessions']}"
            )
            other = theirs.get(r["sessions"], {}).get("runs", {}).get("by_language", {})
            if language in other and language in kernelpad_base:
                p99 = other[language]["p99_ms"]
                line += f"; kernelpad p99 {p99} ms = {p99 / kernelpad_base[language]:.2f}x"
            lines.append(line)
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,50,100,150", help="S values, comma-separated")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of runs per S")
    parser.add_argument("--run-every", type=float, default=5.0, help="seconds between runs")
    parser.add_argument(
        "--baseline-run-every",
        type=float,
        default=0.25,
        help="seconds between runs at the smallest S (as load.py's)",
    )
    parser.add_argument(
        "--through-server",
        action="store_true",
        help="run through the server floor (load_server_floor.py), two typists an interview",
    )
    parser.add_argument(
        "--edit-rate", type=float, default=2.0, help="edits a second a typist (--through-server)"
    )
    parser.add_argument(
        "--stored",
        action="store_true",
        help="the server floor stores each edit and run before anyone sees it (--through-server)",
    )
    parser.add_argument("--output", default="load_floor", help="name of the results file")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where it goes")
    parser.add_argument(
        "--compare",
        type=Path,
        default=RESULTS / "load.json",
        help="load.py's results to print beside the floor's (if the file exists)",
    )
    add_client_loop(parser)
    args = parser.parse_args()
    if args.stored and not args.through_server:
        parser.error("--stored is the server floor's: give --through-server too")
    return args


async def main(args: argparse.Namespace) -> None:
    counts = sorted({int(s) for s in args.sessions.split(",")})
    results = [
        await phase(
            count,
            args.duration,
            args.baseline_run_every if n == 0 else args.run_every,
            args.edit_rate if args.through_server else None,
            args.stored,
        )
        for n, count in enumerate(counts)
    ]
    kernelpad = json.loads(args.compare.read_text())["results"] if args.compare.exists() else []
    print("\nEach language's run p99 against its own at the smallest S (load.py's 2x rule):")
    print("\n".join(compare(results, kernelpad)))
    out = {"machine": machine_info(), "settings": vars(args), "results": results}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{args.output}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    try:
        arguments = parse_args()
        run_on_kernelpads_loop(main(arguments), arguments.client_loop)
    except BenchError as exc:
        raise SystemExit(f"load_floor: {exc}") from None
