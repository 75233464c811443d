"""Notebooks out and in: a session exported as a valid Jupyter notebook (outputs of real
Python, JavaScript and Java kernels included), imported back, and the question library."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import nbformat
import pycrdt
import pytest

from kernelpad.config import Settings
from kernelpad.sessions.grading.nbgrader_format import release
from tests import nbformat_typed
from tests.conftest import Api, RunningServer, eventually, make_settings, running_server
from tests.web.clients import JsonClient, YjsClient

pytestmark = pytest.mark.timeout(240)

NOTES = "Strong on recursion; ask about complexity next time."


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1},
        code_execution_timeout=60,
    )


def three_languages() -> dict[str, Any]:
    """A notebook as JupyterLab would save it, with a cell in each of three languages."""
    cells = [
        nbformat_typed.new_markdown_cell("# Warm-up\n\nThree languages, one notebook."),
        nbformat_typed.new_code_cell("total = sum(range(5))\nprint('python', total)\ntotal * 2"),
        nbformat_typed.new_code_cell(
            "console.log('javascript', [1, 2, 3].map((x) => x * 2).join(','));"
        ),
        nbformat_typed.new_code_cell('System.out.println("java " + (6 * 7));'),
    ]
    cells[2].metadata["kernelpad"] = {"language": "javascript"}
    cells[3].metadata["kernelpad"] = {"language": "java"}
    notebook = nbformat_typed.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    saved: dict[str, Any] = json.loads(nbformat_typed.writes(notebook))
    return saved


async def run_every_code_cell(server: RunningServer, session: dict[str, Any]) -> None:
    """Run each code cell as the pad does (by cell id), so its outputs land in the notebook."""
    client, state = await JsonClient.join_with(
        server, session["session_id"], "host-runner", "Ada", session["host_token"]
    )
    exported = await export(server.api, session)
    for cell in exported["cells"]:
        if cell["cell_type"] == "code":
            await client.send("execute", {"cell_id": cell["id"]})
            finished = await client.expect("execution_finished")
            assert finished["status"] == "ok", finished
    client.close()


async def export(api: Api, session: dict[str, Any]) -> dict[str, Any]:
    response = await api.get(
        f"/api/v1/sessions/{session['session_id']}/notebook.ipynb", token=session["host_token"]
    )
    assert response.status == 200, response.body
    assert response.headers["Content-Type"] == "application/x-ipynb+json"
    assert response.headers["Content-Disposition"].endswith(f'-{session["session_id"]}.ipynb"')
    exported: dict[str, Any] = response.json
    return exported


def comparable(notebook: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a person sees of each cell: kind, language, source, outputs, count."""
    return [
        (
            cell["cell_type"],
            cell["metadata"].get("kernelpad", {}).get("language"),
            cell["source"],
            cell.get("outputs"),
            cell.get("execution_count"),
        )
        for cell in notebook["cells"]
    ]


async def test_export_with_outputs_in_three_languages_then_import_it_back(
    api: Api, server: RunningServer
) -> None:
    response = await api.post(
        "/api/v1/sessions",
        {"host_name": "Ada", "session_name": "Warm-up", "notebook": three_languages()},
    )
    assert response.status == 201, response.body
    session = response.json
    assert session["language"] == "python"  # the notebook's kernelspec
    await api.put(
        f"/api/v1/sessions/{session['session_id']}/notes",
        {"notes": NOTES},
        token=session["host_token"],
    )
    await run_every_code_cell(server, session)

    notebook = await export(api, session)
    nbformat.validate(nbformat_typed.from_dict(notebook))
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert notebook["metadata"]["kernelpad"]["title"] == "Warm-up"
    cells = notebook["cells"]
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "code", "code"]
    assert [c["metadata"]["kernelpad"]["language"] for c in cells[1:]] == [
        "python",
        "javascript",
        "java",
    ]
    python, javascript, java = cells[1:]
    assert python["outputs"][0] == {
        "output_type": "stream",
        "name": "stdout",
        "text": "python 10\n",
    }
    assert python["outputs"][1]["data"]["text/plain"] == "20"
    assert "javascript 2,4,6" in javascript["outputs"][0]["text"]
    assert "java 42" in java["outputs"][0]["text"]
    assert all(isinstance(c["execution_count"], int) for c in cells[1:])
    # The host's private notes never leave with the notebook.
    assert NOTES not in json.dumps(notebook)

    # Back in, with its outputs: the same notebook, cell for cell.
    again = await api.post(
        "/api/v1/sessions",
        {"host_name": "Ada", "notebook": notebook, "include_outputs": True},
    )
    assert again.status == 201, again.body
    assert comparable(await export(api, again.json)) == comparable(notebook)
    # Without them: the same cells, nothing run yet.
    fresh = await api.post("/api/v1/sessions", {"host_name": "Ada", "notebook": notebook})
    cleared = await export(api, fresh.json)
    assert [c["source"] for c in cleared["cells"]] == [c["source"] for c in cells]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cleared["cells"][1:])
    # The REST API's "code" is the first code cell of the notebook.
    assert fresh.json["code"] == python["source"]


async def test_a_traceback_is_shown_once_in_the_export_and_the_replay(
    api: Api, server: RunningServer
) -> None:
    """The error output holds the traceback; it is not copied into a stderr output too."""
    notebook = nbformat_typed.new_notebook(cells=[nbformat_typed.new_code_cell("1 / 0")])
    response = await api.post("/api/v1/sessions", {"host_name": "Ada", "notebook": notebook})
    session = response.json
    client, _ = await JsonClient.join_with(
        server, session["session_id"], "host-runner", "Ada", session["host_token"]
    )
    [cell] = (await export(api, session))["cells"]
    await client.send("execute", {"cell_id": cell["id"]})
    assert (await client.expect("execution_finished"))["status"] == "error"
    client.close()
    [cell] = (await export(api, session))["cells"]
    assert [o["output_type"] for o in cell["outputs"]] == ["error"]
    assert cell["outputs"][0]["ename"] == "ZeroDivisionError"
    timeline = await api.get(
        f"/api/v1/sessions/{session['session_id']}/timeline", token=session["host_token"]
    )
    [run] = [event for event in timeline.json["events"] if event["kind"] == "run"]
    assert [o["output_type"] for o in run["outputs"]] == ["error"]


async def test_only_the_host_exports(api: Api) -> None:
    session = await api.create_session(host_name="Ada")
    path = f"/api/v1/sessions/{session['session_id']}/notebook.ipynb"
    assert (await api.get(path)).status == 401
    assert (await api.get(path, token="not-the-host")).status == 403
    joined = await api.post(
        f"/api/v1/sessions/{session['session_id']}/participants", {"display_name": "Alan"}
    )
    assert (await api.get(path, token=joined.json["participant_token"])).status == 403
    assert (await api.get("/api/v1/sessions/nope12345678/notebook.ipynb", token="x")).status == 404


async def test_an_ended_session_exports_after_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, kernel_pool_size={"python": 1})
    async with running_server(settings) as running:
        api = running.api
        session = (
            await api.post("/api/v1/sessions", {"host_name": "Ada", "notebook": three_languages()})
        ).json
        client, _ = await JsonClient.join_with(
            running, session["session_id"], "h", "Ada", session["host_token"]
        )
        first = (await export(api, session))["cells"][1]["id"]
        await client.send("execute", {"cell_id": first})
        assert (await client.expect("execution_finished"))["status"] == "ok"
        client.close()
        before = await export(api, session)
        await api.delete(f"/api/v1/sessions/{session['session_id']}", token=session["host_token"])
    async with running_server(settings) as running:
        after = await export(running.api, session)
    assert comparable(after) == comparable(before)
    assert after["cells"][1]["outputs"][0]["text"] == "python 10\n"


@pytest.mark.parametrize(
    ("notebook", "problem"),
    [
        ({"cells": "many", "nbformat": 4, "nbformat_minor": 5, "metadata": {}}, "not a valid"),
        ({"nbformat": 4}, "not a valid"),
        ({"hello": "world"}, "missing a key: cells"),
        (
            {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
            "no code cell",
        ),
    ],
)
async def test_a_bad_notebook_is_refused_with_the_reason(
    api: Api, notebook: dict[str, Any], problem: str
) -> None:
    response = await api.post("/api/v1/sessions", {"host_name": "Ada", "notebook": notebook})
    assert response.status == 422, response.body
    assert problem in response.json["error"]["message"]


async def test_the_question_library(api: Api, server_settings: Settings) -> None:
    listed = (await api.get("/api/v1/questions")).json["questions"]
    by_id = {q["id"]: q for q in listed}
    assert {"two-sum", "debounce", "lru-cache"} <= set(by_id)
    assert by_id["two-sum"]["title"] == "Two sum" and by_id["two-sum"]["language"] == "python"
    assert by_id["debounce"]["language"] == "javascript"
    assert by_id["lru-cache"]["language"] == "java"
    assert all(q["description"] for q in listed)

    # Started from a question: its cells, its language, its title.
    created = await api.post("/api/v1/sessions", {"host_name": "Ada", "question_id": "lru-cache"})
    assert created.status == 201, created.body
    session = created.json
    assert session["language"] == "java" and session["session_name"] == "LRU cache"
    shipped = nbformat_typed.read(
        Path(__file__).resolve().parents[2] / "kernelpad/sessions/questions/lru-cache.ipynb",
        as_version=4,
    )
    notebook = await export(api, session)
    # As nbgrader releases it: the answer's solution is the stub, and the test is as given.
    released = release(json.loads(json.dumps(shipped.cells)), "java")
    assert released is not None
    assert [c["source"] for c in notebook["cells"]] == [c["source"] for c in released.cells]
    assert "BEGIN SOLUTION" not in json.dumps(notebook) and "// YOUR CODE HERE" in json.dumps(
        notebook
    )
    # Its statement goes beside the notebook, with the minutes it should take.
    assert session["statement"] == shipped.metadata.kernelpad.statement
    assert session["statement"].startswith("Implement `LruCache<K, V>`")
    assert session["suggested_minutes"] == by_id["lru-cache"]["minutes"] == 45
    assert notebook["metadata"]["kernelpad"]["statement"] == session["statement"]

    # The folder is the operator's: a question added shows at once; a broken one is listed as
    # broken, with why.
    folder = server_settings.data_dir / "questions"
    mine = copy.deepcopy(three_languages())
    mine["metadata"]["kernelpad"] = {"title": "Warm-up", "description": "Three languages."}
    (folder / "warm-up.ipynb").write_text(json.dumps(mine))
    (folder / "broken.ipynb").write_text("{not json")
    listed = (await api.get("/api/v1/questions")).json["questions"]
    assert {
        "id": "warm-up",
        "title": "Warm-up",
        "description": "Three languages.",
        "language": "python",
        "minutes": None,
        "tests": 0,
        "points": 0,
        "broken": None,
    } in listed
    broken = next(q for q in listed if q["id"] == "broken")
    assert "JSON" in broken["broken"] or "Expecting" in broken["broken"], broken
    # A question nbgrader would refuse is broken too, with nbgrader's reason.
    bad = copy.deepcopy(three_languages())
    bad["cells"][0]["metadata"]["nbgrader"] = {
        "schema_version": 3,
        "grade": True,
        "solution": False,
        "locked": False,
        "grade_id": "t",
    }
    (folder / "no-points.ipynb").write_text(json.dumps(bad))
    listed = (await api.get("/api/v1/questions")).json["questions"]
    assert "has no points" in next(q for q in listed if q["id"] == "no-points")["broken"]
    refused = await api.post("/api/v1/sessions", {"host_name": "Ada", "question_id": "no-points"})
    assert refused.status == 422 and "has no points" in refused.json["error"]["message"]
    (folder / "no-points.ipynb").unlink()

    missing = await api.post("/api/v1/sessions", {"host_name": "Ada", "question_id": "nope"})
    assert missing.status == 404 and missing.json["error"]["code"] == "question_not_found"
    both = await api.post(
        "/api/v1/sessions",
        {"host_name": "Ada", "question_id": "two-sum", "notebook": three_languages()},
    )
    assert both.status == 422 and "not both" in both.json["error"]["message"]


async def test_whatever_a_participant_puts_in_the_document_the_export_stays_valid(
    api: Api, server: RunningServer
) -> None:
    session = await api.create_session(host_name="Ada")
    sid = session["session_id"]
    mallory = await YjsClient.connect(server, sid, client_id="mallory", display_name="Mallory")
    await eventually(lambda: mallory.cell_count == 1, "sync")
    cells = mallory.doc.get("cells", type=pycrdt.Array)
    with mallory.doc.transaction():
        cells.append("not a cell")
        cells.append(pycrdt.Map({"cell_type": "code", "metadata": "odd", "source": "x = 1"}))
        cells.append(
            pycrdt.Map(
                {
                    "cell_type": "code",
                    "id": "dup",
                    "metadata": pycrdt.Map({"kernelpad": "zz"}),
                    "source": "y = 2",
                }
            )
        )
        cells.append(pycrdt.Map({"cell_type": "markdown", "id": "dup", "source": "# twice"}))
    await eventually(lambda: _cell_count(api, session, 5), "the odd cells at the server")
    # Outputs are kernelpad's to write: odd ones (from a document stored before that rule, say)
    # can only be in the server's copy, and must not break the export either.
    manager = server.manager
    room = await manager.room(sid)
    try:
        odd = [
            cell
            for cell in room.document.ydoc.get("cells", type=pycrdt.Array)
            if isinstance(cell, pycrdt.Map) and cell.get("id") == "dup"
        ][0]
        assert isinstance(odd, pycrdt.Map)
        odd["outputs"] = pycrdt.Array(
            ["text", {"output_type": "stream", "name": "stdout", "text": "ok\n"}]
        )
        odd["execution_count"] = -3
    finally:
        manager.rooms.release(room)
    notebook = await export(api, session)
    nbformat.validate(nbformat_typed.from_dict(notebook))
    sources = [c["source"] for c in notebook["cells"]]
    assert sources[1:] == ["x = 1", "y = 2", "# twice"]
    assert notebook["cells"][2]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "ok\n"}
    ]
    await mallory.close()


async def _cell_count(api: Api, session: dict[str, Any], count: int) -> bool:
    return len((await export(api, session))["cells"]) == count - 1  # less the string


async def test_odd_metadata_in_an_imported_notebook_is_ignored(api: Api) -> None:
    notebook = three_languages()
    notebook["metadata"]["kernelpad"] = "not an object"
    notebook["cells"][1]["metadata"]["kernelpad"] = "zz"
    response = await api.post("/api/v1/sessions", {"host_name": "Ada", "notebook": notebook})
    assert response.status == 201, response.body
    notebook["metadata"]["kernelpad"] = {"title": 123}
    titled = await api.post("/api/v1/sessions", {"host_name": "Ada", "notebook": notebook})
    assert titled.status == 201 and titled.json["session_name"] == "Interview with Ada"
    notebook["metadata"]["kernelpad"] = {"title": "x" * 500}
    long = await api.post("/api/v1/sessions", {"host_name": "Ada", "notebook": notebook})
    assert long.status == 201 and long.json["session_name"] == "Interview with Ada"


async def test_a_broken_question_is_a_clear_error(api: Api, server_settings: Settings) -> None:
    folder = server_settings.data_dir / "questions"
    (folder / "garbled.ipynb").write_bytes(b"\xff\xfe not text")
    (folder / "folder.ipynb").mkdir()
    for question in ("garbled", "folder"):
        response = await api.post("/api/v1/sessions", {"host_name": "Ada", "question_id": question})
        assert response.status == 422, response.body
        assert f"The question {question!r} cannot be read" in response.json["error"]["message"]
