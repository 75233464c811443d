"""kernelpad's Grade against nbgrader itself (``nbgrader generate_assignment`` and ``autograde``,
from the virtualenv ``make test`` gives it): the same questions released the same way, and the
same submissions (right, wrong, crashing, slow, failing only a hidden test) given the same score,
test by test, in all four languages."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from kernelpad.config import Settings
from kernelpad.sessions.grading.nbgrader_format import CODE_STUBS
from tests.conftest import Api, RunningServer, eventually, make_settings
from tests.web.browser import ARTIFACTS
from tests.web.clients import JsonClient
from tests.web.test_grading_languages import QUESTIONS, WRONG

ROOT = Path(__file__).resolve().parents[2]
NBGRADER_VENV = ROOT / ".venv-nbgrader"
TIME_LIMIT = 8  # seconds a cell may run, in both

# Each question is graded five times by each side, a never-ending answer waiting out its time
# limit in every test cell and a JVM or two started per submission: about a minute here, more
# than twice that on a slower machine.
pytestmark = pytest.mark.timeout(360)

# Each language's answers besides the reference and WRONG (a hidden test fails): one that
# fails the visible tests, one that crashes when called, one that never returns.
ANSWERS = {
    "two-sum": {
        "visible": "def two_sum(numbers, target):\n    return None\n",
        "crash": "def two_sum(numbers, target):\n    raise RuntimeError('crash')\n",
        "slow": "def two_sum(numbers, target):\n    while True:\n        pass\n",
    },
    "debounce": {
        "visible": "function debounce(fn, ms) {\n  return (...args) => fn(...args);\n}\n",
        "crash": "function debounce(fn, ms) {\n  throw new Error('crash');\n}\n",
        "slow": "function debounce(fn, ms) {\n  while (true) {}\n}\n",
    },
    "lru-cache": {
        "visible": "class LruCache<K, V> {\n    LruCache(int capacity) {}\n"
        "    V get(K key) { return null; }\n    void put(K key, V value) {}\n}\n",
        "crash": "class LruCache<K, V> {\n    LruCache(int capacity) {}\n"
        '    V get(K key) { throw new RuntimeException("crash"); }\n'
        '    void put(K key, V value) { throw new RuntimeException("crash"); }\n}\n',
        "slow": "class LruCache<K, V> {\n    private final int capacity;\n"
        "    LruCache(int capacity) { this.capacity = capacity; }\n"
        "    V get(K key) { while (capacity >= 0) {} return null; }\n"
        "    void put(K key, V value) { while (capacity >= 0) {} }\n}\n",
    },
    "binary-search": {
        "visible": "#include <vector>\n"
        "int find_index(const std::vector<int>& sorted, int target) { return 0; }\n",
        "crash": "#include <vector>\n#include <cstdlib>\n"
        "int find_index(const std::vector<int>& sorted, int target) { std::abort(); }\n",
        "slow": "#include <vector>\n"
        "int find_index(const std::vector<int>& sorted, int target) {\n"
        "    for (volatile int i = 0; i >= 0;) {}\n    return -1;\n}\n",
    },
}

# nbgrader's stubs keyed by the kernelspec's language, kernelpad's by its own language ids.
KERNELSPEC_LANGUAGE = {"python": "python", "java": "java", "cpp": "c++", "javascript": "typescript"}


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1, "javascript": 1, "java": 1, "cpp": 1},
        code_execution_timeout=TIME_LIMIT,
    )


def reference(question: str) -> str:
    """The question's solution, as a candidate would write it (no delimiters)."""
    notebook = json.loads((QUESTIONS / f"{question}.ipynb").read_text())
    source = "".join(notebook["cells"][0]["source"])
    return "\n".join(line for line in source.split("\n") if "SOLUTION" not in line)


def submissions(question: str) -> dict[str, str]:
    return {"right": reference(question), "hidden": WRONG[question][0], **ANSWERS[question]}


async def nbgrader(course: Path, *args: str) -> str:
    """Run nbgrader in its own virtualenv, seeing kernelpad's kernelspecs."""
    if not (NBGRADER_VENV / "bin" / "nbgrader").exists():
        pytest.fail(f"nbgrader is not installed in {NBGRADER_VENV}: `make test` installs it")
    env = {
        **os.environ,
        # Its gradebook runs `alembic` from PATH; the kernels are kernelpad's own.
        "PATH": f"{NBGRADER_VENV / 'bin'}:{os.environ['PATH']}",
        "JUPYTER_PATH": str(ROOT / ".venv" / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(course / ".jupyter"),
        "JUPYTER_DATA_DIR": str(course / ".jupyter-data"),
    }
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=course,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    # A submission that fails as a whole still has its scores in the gradebook.
    assert process.returncode == 0 or "autograde" in args, text
    return text


GRADEBOOK = textwrap.dedent(
    """
    import json, sys
    from nbgrader.api import Gradebook
    with Gradebook(sys.argv[1]) as gradebook:
        scores = {}
        for submission in gradebook.assignment_submissions(sys.argv[2]):
            for notebook in submission.notebooks:
                scores[submission.student_id] = {g.name: g.auto_score for g in notebook.grades}
        print(json.dumps(scores))
    """
)


async def nbgrader_scores(course: Path, question: str) -> dict[str, dict[str, float | None]]:
    source = course / "source" / question
    source.mkdir(parents=True)
    shutil.copy(QUESTIONS / f"{question}.ipynb", source / f"{question}.ipynb")
    stubs = {KERNELSPEC_LANGUAGE[language]: stub for language, stub in CODE_STUBS.items()}
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n"
        f"c.ClearSolutions.code_stub = {stubs!r}\nc.Execute.timeout = {TIME_LIMIT}\n"
    )
    db = f"sqlite:///{course / 'gradebook.db'}"
    bin_ = NBGRADER_VENV / "bin"
    await nbgrader(course, str(bin_ / "nbgrader"), "generate_assignment", question, f"--db={db}")
    released = json.loads((course / "release" / question / f"{question}.ipynb").read_text())
    for student, answer in submissions(question).items():
        mine = json.loads(json.dumps(released))
        mine["cells"][0]["source"] = answer
        folder = course / "submitted" / student / question
        folder.mkdir(parents=True)
        (folder / f"{question}.ipynb").write_text(json.dumps(mine))
    await nbgrader(course, str(bin_ / "nbgrader"), "autograde", question, f"--db={db}")
    (course / "scores.py").write_text(GRADEBOOK)
    out = await nbgrader(course, str(bin_ / "python"), "scores.py", db, question)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def kernelpad_scores(
    server: RunningServer, api: Api, question: str
) -> tuple[list[str], dict[str, dict[str, float]]]:
    session = await api.create_session(question_id=question)
    sid, token = session["session_id"], session["host_token"]
    path = f"/api/v1/sessions/{sid}/notebook.ipynb"
    released = [c["source"] for c in (await api.get(path, token=token)).json["cells"]]
    host, state = await JsonClient.join_with(server, sid, "host-n", "Grace", token)
    version = state["version"]
    scores = {}
    for student, answer in submissions(question).items():
        await host.send("code_update", {"code": answer, "base_version": version})
        version = (await host.expect("code_update"))["version"]

        async def written(answer: str = answer) -> bool:
            notebook = (await api.get(path, token=token)).json
            return str(notebook["cells"][0]["source"]) == answer

        await eventually(written, "the submission in the notebook")
        graded = await api.post(f"/api/v1/sessions/{sid}/grades", token=token)
        assert graded.status == 201, graded.body
        scores[student] = {r["grade_id"]: r["score"] for r in graded.json["results"]}
    await host.aclose()
    return released, scores


@pytest.mark.parametrize("question", sorted(ANSWERS))
async def test_kernelpad_and_nbgrader_agree(
    server: RunningServer, api: Api, question: str, tmp_path: Path
) -> None:
    # Side by side: most of each side's time is waiting out the never-ending answer's limit.
    theirs, (released, ours) = await asyncio.gather(
        nbgrader_scores(tmp_path, question), kernelpad_scores(server, api, question)
    )
    # Released alike: what the candidate starts from.
    nbgrader_release = json.loads(
        (tmp_path / "release" / question / f"{question}.ipynb").read_text()
    )
    assert released == ["".join(c["source"]) for c in nbgrader_release["cells"]]
    # Scored alike, test by test (the table kept for a person to read).
    (ARTIFACTS / "nbgrader").mkdir(parents=True, exist_ok=True)
    table = {"kernelpad": ours, "nbgrader": theirs}
    (ARTIFACTS / "nbgrader" / f"{question}.json").write_text(json.dumps(table, indent=1))
    assert ours == theirs, (question, ours, theirs)
    assert sum(ours["right"].values()) > 0
    assert sum(ours["right"].values()) > sum(ours["hidden"].values())
