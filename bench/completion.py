"""How long the editor waits for the kernel's completions, per language, next to the kernel
answering directly.

The pad asks the cell's kernel for completions as someone presses Tab (``complete`` over the
JSON socket, or ``POST /api/v1/sessions/{id}/complete``). For each language (``--languages``),
this benchmark measures, on a warm kernel:

1. kernelpad: ``POST .../complete`` for a member of a standard module or object, over one
   keep-alive HTTP connection (the same answer the socket gives, without a socket to hold),
   once the server's pool has its next kernel ready (its start would compete for the CPUs);
2. the floor: the same ``complete_request`` sent by jupyter_client to a kernel of the language
   started here, with no sandbox and no server;

and prints the median and p95 of each, and their ratio: what kernelpad's layers (HTTP, the
runner, the sandbox's relay) add to the kernel's own answer. The first answer of each kernel
(jedi's first completion in Python, clang's first parse in C++) is shown apart: it is what a
candidate's first Tab costs.

The figures are printed and written to ``bench/results/completion.json``. It exits 0 whatever
they are: this is a measurement, not a test.

Run it with ``.venv/bin/python bench/completion.py [--languages python,cpp] [--runs 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from execute_latency import (
    LANGUAGES,
    BenchLanguage,
    Stats,
    jupyter_kernel,
    kernelpad_server,
    wait_for_pool,
)
from harness import BenchError, machine_info

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "completion.json"

# What each language completes: code, and a match that must be among the answers.
SAMPLES = {
    "python": ("import os\nos.pa", "path"),
    "javascript": ("Math.ma", "max"),
    "typescript": ("Math.ma", "max"),
    "java": ("s.len", "length"),
    "cpp": ("xs.pu", "push_back"),
}
# The code that the completion builds on is run first, where completing needs it.
SETUP = {"java": 'String s = "x";', "cpp": "#include <vector>\n\nstd::vector<int> xs;"}
WARM_TIMEOUT = 120.0
# Answers that lacked the expected match, by series: counted and shown, never hidden.
MISSED: dict[str, int] = {}


def kernelpad_series(lang: BenchLanguage, runs: int) -> tuple[float, Stats]:
    """The first answer's seconds, then ``runs`` answers', through a kernelpad server."""
    code, expected = SAMPLES[lang.id]
    with kernelpad_server(lang, 1) as api:
        session_id, _ = api.create_session(lang.id)
        if lang.id in SETUP:
            api.execute(session_id, SETUP[lang.id])
        # The session took the pooled kernel and the pool starts another: a JVM's start takes
        # a core for a second or two, and completions timed meanwhile took twice as long.
        wait_for_pool(api)
        body = {"code": code, "cursor_pos": len(code)}
        path = f"/api/v1/sessions/{session_id}/complete"
        deadline = time.monotonic() + WARM_TIMEOUT
        while True:  # the first question may find the kernel starting
            began = time.perf_counter()
            status, answer = api.call("POST", path, body)
            first = time.perf_counter() - began
            if status != 200:
                raise BenchError(f"{lang.id}: complete answered {status}: {answer}")
            if answer["status"] == "ok":
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{lang.id}: no completion within {WARM_TIMEOUT:g} s: {answer}")
            time.sleep(0.2)
        timings = []
        for _ in range(runs):
            began = time.perf_counter()
            status, answer = api.call("POST", path, body)
            timings.append(time.perf_counter() - began)
            if status != 200:
                raise BenchError(f"{lang.id}: complete answered {status}: {answer}")
            if not any(expected in m for m in answer.get("matches", [])):
                MISSED[f"kernelpad {lang.id}"] = MISSED.get(f"kernelpad {lang.id}", 0) + 1
    return first, Stats.of(timings)


async def direct_series(lang: BenchLanguage, runs: int) -> tuple[float, Stats]:
    """The same through jupyter_client, to a kernel started here."""
    code, expected = SAMPLES[lang.id]
    with tempfile.TemporaryDirectory(prefix="kpbench-complete-") as folder:
        async with jupyter_kernel(lang, Path(folder), "direct") as client:
            if lang.id in SETUP:
                await client.execute_interactive(SETUP[lang.id], timeout=60)

            async def once() -> float:
                began = time.perf_counter()
                msg_id = client.complete(code, len(code))
                while True:
                    reply = await client.get_shell_msg(timeout=60)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        break
                matches = reply["content"].get("matches", [])
                if not any(expected in m for m in matches):
                    MISSED[f"direct {lang.id}"] = MISSED.get(f"direct {lang.id}", 0) + 1
                return time.perf_counter() - began

            first = await once()
            return first, Stats.of([await once() for _ in range(runs)])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(), "languages": {}}
    for language_id in args.languages.split(","):
        lang = LANGUAGES[language_id]
        print(f"  {language_id} ...", flush=True)
        kp_first, kp = kernelpad_series(lang, args.runs)
        direct_first, direct = asyncio.run(direct_series(lang, args.runs))
        results["languages"][language_id] = {
            "kernelpad_first_ms": round(kp_first * 1000, 1),
            "kernelpad": kp.__dict__,
            "direct_first_ms": round(direct_first * 1000, 1),
            "direct": direct.__dict__,
            "ratio_median": round(kp.median_ms / direct.median_ms, 2),
        }
    results["answers_without_the_expected_match"] = dict(MISSED)
    return results


def print_report(results: dict[str, Any]) -> None:
    print("\nCompletion latency, warm kernel, ms (first answer apart)")
    print(
        f"{'language':<11}{'kernelpad median':>17}{'p95':>9}{'first':>9}"
        f"{'direct median':>15}{'p95':>9}{'first':>9}{'kp/direct':>11}"
    )
    for language_id, r in results["languages"].items():
        kp, direct = r["kernelpad"], r["direct"]
        print(
            f"{language_id:<11}{kp['median_ms']:>17.1f}{kp['p95_ms']:>9.1f}"
            f"{r['kernelpad_first_ms']:>9.1f}{direct['median_ms']:>15.1f}"
            f"{direct['p95_ms']:>9.1f}{r['direct_first_ms']:>9.1f}{r['ratio_median']:>10.2f}x"
        )
    missed = results["answers_without_the_expected_match"]
    print(
        "Answers without the expected match: "
        + (", ".join(f"{series} {count}" for series, count in missed.items()) or "none")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", default="python,javascript,java,cpp")
    parser.add_argument("--runs", type=int, default=30, help="answers timed per language (30)")
    args = parser.parse_args()
    print("Measuring completion latency ...", flush=True)
    results = measure(args)
    print_report(results)
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nFigures written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
