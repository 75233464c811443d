"""The capacity and soak harness (bench/load.py) still works: two interviews for a few seconds,
with its checks that nothing was lost. Its figures are not judged here (they are bench's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

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
        assert phase["checks"] == {
            "texts_differing": 0,
            "runs_missing_from_history": 0,
            "stored_notebooks_differing": 0,
        }
        assert phase["kernels_after_all_ended"] <= 3  # the pool's size
    assert figures["knee_sessions"] in (1, 3)
