"""kernelpad's four example questions with tests, one per language, graded with real kernels:
the stub scores nothing, the reference solution everything, and an answer that passes the
visible tests but not the hidden ones loses the hidden tests' points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, eventually, make_settings
from tests.web.clients import JsonClient

QUESTIONS = Path(__file__).resolve().parents[2] / "kernelpad/sessions/questions"

# Answers that pass the visible tests and fail a hidden one, with the score they get.
WRONG = {
    "two-sum": (
        "def two_sum(numbers, target):\n"
        "    seen = {}\n"
        "    for i, n in enumerate(numbers):\n"
        "        if n > target:\n"
        "            continue  # wrong with negative numbers\n"
        "        if target - n in seen:\n"
        "            return seen[target - n], i\n"
        "        seen[n] = i\n"
        "    return None\n",
        1.0,
    ),
    "debounce": (
        "function debounce(fn, ms) {\n"
        "  let timer, fired = false;  // wrong: only ever calls once\n"
        "  return (...args) => {\n"
        "    clearTimeout(timer);\n"
        "    timer = setTimeout(() => { if (!fired) { fired = true; fn(...args); } }, ms);\n"
        "  };\n"
        "}\n",
        0.0,
    ),
    "lru-cache": (
        "import java.util.*;\n"
        "class LruCache<K, V> {\n"
        "    private final int capacity;\n"
        "    private final LinkedHashMap<K, V> entries = new LinkedHashMap<>(16, 0.75f, true);\n"
        "    LruCache(int capacity) { this.capacity = capacity; }\n"
        "    V get(K key) { return entries.get(key); }\n"
        "    void put(K key, V value) {\n"
        "        entries.putIfAbsent(key, value);  // wrong: never replaces\n"
        "        if (entries.size() > capacity)\n"
        "            entries.remove(entries.keySet().iterator().next());\n"
        "    }\n"
        "}\n",
        0.0,
    ),
    "binary-search": (
        "#include <vector>\n"
        "int find_index(const std::vector<int>& sorted, int target) {\n"
        "    int low = 0, high = static_cast<int>(sorted.size()) - 1;\n"
        "    while (low < high) {  // wrong: misses a range of one\n"
        "        int middle = low + (high - low) / 2;\n"
        "        if (sorted[middle] == target) return middle;\n"
        "        if (sorted[middle] < target) low = middle + 1; else high = middle - 1;\n"
        "    }\n"
        "    return -1;\n"
        "}\n",
        0.0,
    ),
}


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1, "javascript": 1, "java": 1, "cpp": 1},
        code_execution_timeout=30,
    )


def reference(question: str) -> str:
    notebook = json.loads((QUESTIONS / f"{question}.ipynb").read_text())
    answer = notebook["cells"][0]
    assert answer["metadata"]["nbgrader"]["solution"] is True
    return "".join(answer["source"])


async def grade(api: Api, session: dict[str, Any]) -> dict[str, Any]:
    graded = await api.post(
        f"/api/v1/sessions/{session['session_id']}/grades", token=session["host_token"]
    )
    assert graded.status == 201, graded.body
    return graded.json  # type: ignore[no-any-return]


@pytest.mark.parametrize("question", sorted(WRONG))
async def test_each_language_grades_its_question(
    server: RunningServer, api: Api, question: str
) -> None:
    listed = {q["id"]: q for q in (await api.get("/api/v1/questions")).json["questions"]}
    assert listed[question]["tests"] >= 1 and listed[question]["broken"] is None, listed[question]
    session = await api.create_session(question_id=question)
    total = listed[question]["points"]
    # The stub, as released: nothing.
    stub = await grade(api, session)
    assert stub["score"] == 0 and stub["max_score"] == total, stub
    host, state = await JsonClient.join_with(
        server, session["session_id"], "host-z", "Grace", session["host_token"]
    )
    version = state["version"]
    path = f"/api/v1/sessions/{session['session_id']}/notebook.ipynb"
    for answer, expected in (
        (WRONG[question][0], WRONG[question][1]),
        (reference(question), total),
    ):
        # Replacing the whole text: named as a change from the version the host has.
        await host.send("code_update", {"code": answer, "base_version": version})
        version = (await host.expect("code_update"))["version"]

        async def written(answer: str = answer, path: str = path) -> bool:
            notebook = (await api.get(path, token=session["host_token"])).json
            return str(notebook["cells"][0]["source"]) == answer

        await eventually(written, "the answer in the notebook")
        graded = await grade(api, session)
        assert graded["score"] == expected, (question, graded)
    await host.aclose()
