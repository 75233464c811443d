"""The server floor of bench/execute_latency.py (bench/server_floor.py): a real Tornado server in
its own process, on a real kernel, answering runs over HTTP and its WebSocket with the kernel's
outputs, settled with the language's done probe where it has one. What it answers is checked
here; how fast, only in the benchmark."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.bench_scripts import bench_module


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_the_server_floor_runs_code_and_answers_with_its_result(language: str) -> None:
    execute_latency = bench_module("execute_latency")
    harness = bench_module("harness")
    lang = execute_latency.LANGUAGES[language]
    # A kernel's Unix sockets need a short path: a folder directly under the temp dir.
    with tempfile.TemporaryDirectory(prefix="kpt-") as tmp:
        async with execute_latency.floor_runs(lang, Path(tmp), socket=True) as runs:
            assert await runs.http(True) > 0
            assert await runs.ws(True) > 0
            await runs.http(False)  # not counted
            runs.body = b'{"code": "throw new Error()"}'
            if language == "python":
                runs.body = b'{"code": "1 / 0"}'
            with pytest.raises(harness.BenchError, match="ended error"):
                await runs.ws(True)
            with pytest.raises(harness.BenchError, match="answered 200"):
                await runs.http(True)
    # The trivial code's result (2) came with both of its counted runs.
    assert runs.results == [True, True]
