"""The capacity and soak harness (bench/load.py) still works: two interviews for a few seconds,
with its checks that nothing was lost. Its figures are not judged here (they are bench's)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench_scripts import BENCH, bench_module

pytestmark = pytest.mark.timeout(300)


def test_the_load_harness_runs_and_finds_nothing_lost(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "load.py"),
            "--sessions",
            "1,3",
            "--duration",
            "4",
            "--run-every",
            "1",
            "--results-dir",
            str(tmp_path),
            "--output",
            "smoke",
            "--busy",
            "1",
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((tmp_path / "smoke.json").read_text())
    assert (tmp_path / "smoke.png").stat().st_size > 10_000
    for phase in figures["results"]:
        assert phase["errors"] == 0, phase["error_examples"]
        assert phase["edits_lost"] == 0 and phase["edits_sent"] > 0
        assert phase["runs"]["total"]["count"] > 0
        # Every run is split by its stored record: to the server, in it, and back.
        runs = phase["runs"]
        for part in ("inbound", "server", "outbound"):
            assert runs[part]["count"] == runs["total"]["count"]
            assert 0 < runs[part]["p50_ms"] < runs["total"]["max_ms"]
        assert phase["checks"] == {
            "texts_differing": 0,
            "runs_missing_from_history": 0,
            "stored_notebooks_differing": 0,
        }
        assert phase["kernels_after_all_ended"] <= 3  # the pool's size
        # The sampler finds the server's kernels, and what an idle one takes.
        assert phase["kernels_alive_max"] >= 2
        assert phase["memory_per_idle_kernel_mib"]["python"] > 10
        # What the hypervisor took, sampled each second with the rest (% of one core).
        cores = 100 * (os.cpu_count() or 1)
        assert 0 <= phase["machine_steal_percent_mean"] <= phase["machine_steal_percent_max"]
        assert phase["machine_steal_percent_max"] <= cores
        # The server's own waits, from its /metrics over the phase.
        assert phase["server_loop_lag"]["count"] > 0
        assert phase["server_database_write"]["count"] > 0
        # Every run timed by its kernel's own clock too (both languages date their messages),
        # within the part the server times; the busy interview's runs count there as well.
        own = phase["kernels_own_time"]
        if phase["busy_sessions"] == 0:
            assert own["count"] == runs["total"]["count"]
            assert 0 < own["p50_ms"] <= runs["server"]["p99_ms"]
        else:
            assert own["count"] > runs["total"]["count"]
    # One of the three keeps a core busy; the one interview alone is the baseline.
    assert [phase["busy_sessions"] for phase in figures["results"]] == [0, 1]
    assert figures["knee_sessions"] in (1, 3)


def test_histograms_read_from_metrics_give_their_quantiles_between_two_scrapes() -> None:
    harness = bench_module("harness")
    inf = float("inf")
    before = [(0.001, 10.0), (0.005, 10.0), (0.01, 10.0), (inf, 10.0)]
    after = [(0.001, 60.0), (0.005, 158.0), (0.01, 159.0), (inf, 160.0)]
    # 150 new: 50 under 1 ms, 98 in 1-5 ms, 1 in 5-10 ms, 1 past 10 ms. The 75th is a
    # quarter into 1-5 ms; the 148.5th halfway into 5-10 ms.
    assert harness.histogram_summary(before, after) == {
        "count": 150,
        "p50_ms": 2.02,
        "p99_ms": 7.5,
    }
    # A p99 past the last bound reads as that bound; nothing new, no quantile.
    assert harness.histogram_summary([], [(0.01, 1.0), (inf, 100.0)])["p99_ms"] == 10.0
    assert harness.histogram_summary(after, after)["p99_ms"] is None


def test_the_load_generator_runs_on_uvloop_unless_told_asyncio() -> None:
    harness = bench_module("harness")
    parser = argparse.ArgumentParser()
    harness.add_client_loop(parser)

    async def loop_name() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    for argv, expected in (([], "uvloop"), (["--client-loop", "asyncio"], "asyncio")):
        args = parser.parse_args(argv)
        assert harness.run_on_kernelpads_loop(loop_name(), args.client_loop) == expected
    with pytest.raises(SystemExit):
        parser.parse_args(["--client-loop", "trio"])


def _phase(sessions: int, python: float, javascript: float | None, lost: int = 0) -> dict[str, Any]:
    by_language = {"python": {"p99_ms": python}}
    if javascript is not None:
        by_language["javascript"] = {"p99_ms": javascript}
    return {
        "sessions": sessions,
        "runs": {"by_language": by_language},
        "errors": 0,
        "edits_lost": lost,
        "checks": {"texts_differing": 0},
    }


def test_the_knee_holds_each_language_to_twice_its_own_p99_alone() -> None:
    load = bench_module("load")
    alone = _phase(1, python=10.0, javascript=30.0)
    # Python's 25 ms at 50 is over twice its 10 ms alone, though under the run p99 of all
    # languages alone (JavaScript's 30 ms).
    assert load.knee([alone, _phase(25, 19.0, 55.0), _phase(50, 25.0, 40.0)]) == 25
    assert load.knee([alone, _phase(25, 19.0, 61.0)]) == 1
    assert load.knee([alone, _phase(25, 19.0, None), _phase(50, 12.0, 50.0, lost=1)]) == 25
    # 50 passing is no capacity once 25 failed.
    assert load.knee([alone, _phase(25, 21.0, 40.0), _phase(50, 12.0, 40.0)]) == 1


def test_the_load_floor_runs_the_same_runs_on_bare_kernels(tmp_path: Path) -> None:
    """bench/load_floor.py: load.py's runs on kernels started without kernelpad, Python in
    each interview and JavaScript in the first."""
    load = {"results": [_phase(1, python=10.0, javascript=20.0)]}
    (tmp_path / "load.json").write_text(json.dumps(load))
    result = _load_floor(tmp_path, "--compare", str(tmp_path / "load.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((tmp_path / "floor.json").read_text())
    one, two = figures["results"]
    assert (one["kernels"], two["kernels"]) == (2, 3)
    for phase in (one, two):
        assert set(phase["runs"]["by_language"]) == {"python", "javascript"}
        assert phase["machine_cpu_percent"] > 0
        # Each run by its kernel's own clock too, within the time the client took for it.
        own, total = phase["kernels_own_time"], phase["runs"]["total"]
        assert own["count"] == total["count"]
        assert 0 < own["p50_ms"] <= total["p99_ms"]
    # The one interview runs every 0.25 s: about six runs of each language in 3 s.
    assert one["runs"]["by_language"]["python"]["count"] >= 3
    # Beside load.py's figures at the same S.
    assert "kernelpad p99 10.0 ms = 1.00x" in result.stdout


@pytest.mark.parametrize("stored", [False, True], ids=["relayed", "stored"])
def test_the_load_floor_through_a_server_carries_the_typing_and_the_runs(
    tmp_path: Path, stored: bool
) -> None:
    """bench/load_floor.py --through-server: load.py's own clients, two typists and a runner an
    interview, through bench/load_server_floor.py on bare kernels; every edit reaches the
    other typist and both end with the same text. With --stored, the server has committed
    every edit it relayed and every run it told finished."""
    options = ["--through-server", "--compare", str(tmp_path / "none.json")]
    result = _load_floor(tmp_path, *options, *(["--stored"] if stored else []))
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((tmp_path / "floor.json").read_text())
    for phase in figures["results"]:
        assert set(phase["runs"]["by_language"]) == {"python", "javascript"}
        assert phase["edits_sent"] > 0 and phase["edit_fanout"]["count"] == phase["edits_sent"]
        assert (phase["edits_lost"], phase["texts_differing"], phase["errors"]) == (0, 0, 0)
        # The server's CPU apart from the kernels' (it is the harness's child too).
        assert phase["server_cpu_percent"] > 0
        runs = sum(f["count"] for f in phase["runs"]["by_language"].values())
        if stored:
            assert (phase["stored_updates"], phase["stored_runs"]) == (phase["edits_sent"], runs)
        else:
            assert "stored_runs" not in phase


def test_the_load_floor_stores_only_through_a_server(tmp_path: Path) -> None:
    result = _load_floor(tmp_path, "--stored")
    assert result.returncode == 2
    assert "--stored is the server floor's: give --through-server too" in result.stderr


def _load_floor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """bench/load_floor.py, one interview then two for 3 s each, writing floor.json."""
    return subprocess.run(
        [
            sys.executable,
            str(BENCH / "load_floor.py"),
            *("--sessions", "1,2", "--duration", "3", "--run-every", "0.5"),
            *("--results-dir", str(tmp_path), "--output", "floor"),
            *args,
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=280,
    )
