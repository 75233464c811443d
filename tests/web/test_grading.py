"""Graded questions over REST and the JSON socket, with real kernels: what a candidate can read
holds no solution and no hidden test; the visible tests run in the live kernel for everyone to
see; the host's Grade runs everything in fresh kernels and tells only the host."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jupyter_ydoc import YNotebook

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, eventually, make_settings
from tests.web.clients import JsonClient, YjsClient
from tests.web.test_roles import join_json, register

SECRET = "HIDDEN-7731"
ANSWER = (
    "def add(a, b):\n"
    "    ### BEGIN SOLUTION\n"
    "    return a + b  # SOLUTION-4412\n"
    "    ### END SOLUTION\n"
)
TESTS = (
    "assert add(1, 2) == 3\n"
    "### BEGIN HIDDEN TESTS\n"
    f"assert add(-1, 1) == 0, '{SECRET}'\n"
    "### END HIDDEN TESTS"
)


def nbgrader(**marks: Any) -> dict[str, Any]:
    return {
        "nbgrader": {"schema_version": 3, "grade": False, "solution": False, "locked": False}
        | marks
    }


def question() -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 4,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "kernelpad": {"title": "Add", "statement": "Write `add`."},
        },
        "cells": [
            {
                "cell_type": "code",
                "source": ANSWER,
                "metadata": nbgrader(solution=True, grade_id="add"),
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "source": TESTS,
                "metadata": nbgrader(grade=True, grade_id="tests", points=2),
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "source": "assert add(2, 2) == 4",
                "metadata": nbgrader(grade=True, grade_id="more", points=1),
                "outputs": [],
                "execution_count": None,
            },
        ],
    }


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 1}, code_execution_timeout=10
    )


@pytest.fixture
async def session(api: Api) -> dict[str, Any]:
    return await api.create_session(notebook=question())


def nothing_hidden(text: str) -> None:
    assert SECRET not in text and "SOLUTION-4412" not in text and "BEGIN" not in text


async def test_the_candidate_can_read_nothing_hidden(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    nothing_hidden(json.dumps(session))
    alan = await register(api, sid, "Alan")
    token = alan["participant_token"]
    # The shared document, over the Yjs socket.
    yjs = await YjsClient.connect(server, sid, client_id=alan["client_id"], participant_token=token)
    client = await join_json(server, sid, alan["client_id"], participant_token=token)
    state = await client.expect("session_state")
    nothing_hidden(json.dumps(state))
    await eventually(lambda: yjs.cell_count == 3, "sync")
    cells = YNotebook(yjs.doc).get()["cells"]
    nothing_hidden(json.dumps(cells))
    assert [c["source"] for c in cells] == [
        "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n",
        "assert add(1, 2) == 3",
        "assert add(2, 2) == 4",
    ]
    # Every REST answer a candidate may read.
    for path in ("", "/executions"):
        nothing_hidden((await api.get(f"/api/v1/sessions/{sid}{path}", token=token)).body.decode())
    assert (await api.get(f"/api/v1/sessions/{sid}/grades", token=token)).status == 403
    assert (await api.post(f"/api/v1/sessions/{sid}/grades", token=token)).status == 403
    assert (await api.get(f"/api/v1/sessions/{sid}/timeline", token=token)).status == 403
    await client.aclose()
    await yjs.close()


async def test_the_host_grades_and_only_the_host_sees_the_tests(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid, host = session["session_id"], session["host_token"]
    alan = await register(api, sid, "Alan")
    token = alan["participant_token"]
    candidate = await join_json(server, sid, alan["client_id"], participant_token=token)
    await candidate.expect("session_state")
    grace, _ = await JsonClient.join_with(server, sid, "host-x", "Grace", host)
    # The stub raises: nothing passes.
    graded = await api.post(f"/api/v1/sessions/{sid}/grades", token=host)
    assert graded.status == 201, graded.body
    assert graded.json["score"] == 0 and graded.json["max_score"] == 3
    assert {r["grade_id"]: r["passed"] for r in graded.json["results"]} == {
        "tests": False,
        "more": False,
    }
    assert "NotImplementedError" in graded.json["results"][0]["error"]
    told = await grace.expect("grade_finished")
    assert told["id"] == graded.json["id"] and told["max_score"] == 3
    # A solution that passes the visible tests only: the hidden one fails, for the host.
    await candidate.send("code_update", {"code": "def add(a, b):\n    return abs(a) + b\n"})
    await grace.expect("code_update")
    graded = await api.post(f"/api/v1/sessions/{sid}/grades", token=host)
    results = {r["grade_id"]: r for r in graded.json["results"]}
    assert results["more"]["passed"] and results["more"]["score"] == 1
    assert not results["tests"]["passed"] and SECRET in results["tests"]["error"]
    assert graded.json["score"] == 1
    await grace.expect("grade_finished")
    # Right: full marks. The candidate heard nothing of any of it.
    await candidate.send("code_update", {"code": "def add(a, b):\n    return a + b\n"})
    await grace.expect("code_update")
    graded = await api.post(f"/api/v1/sessions/{sid}/grades", token=host)
    assert graded.json["score"] == 3 and all(r["passed"] for r in graded.json["results"])
    listed = (await api.get(f"/api/v1/sessions/{sid}/grades", token=host)).json["grades"]
    assert [g["score"] for g in listed] == [0, 1, 3]
    # Nothing reached the candidate's socket: its next message is the one sent now.
    await api.patch(f"/api/v1/sessions/{sid}", {"share_score": True}, token=host)
    heard = [await candidate.receive()]
    while heard[-1]["type"] != "session_settings":
        heard.append(await candidate.receive())
    assert heard[-1]["data"]["share_score"] is True
    assert not {"grade_finished", "score_shared"} & {m["type"] for m in heard}
    nothing_hidden(json.dumps(heard))
    # With the score shared, the candidate gets the score, and nothing else.
    graded = await api.post(f"/api/v1/sessions/{sid}/grades", token=host)
    shared = await candidate.receive()
    assert shared == {"type": "score_shared", "data": {"score": 3.0, "max_score": 3.0}} | {
        "timestamp": shared["timestamp"]
    }
    await candidate.aclose()
    await grace.aclose()


async def test_visible_tests_in_the_live_kernel_and_grade_over_the_socket(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid, host = session["session_id"], session["host_token"]
    alan = await register(api, sid, "Alan")
    candidate = await join_json(
        server, sid, alan["client_id"], participant_token=alan["participant_token"]
    )
    await candidate.expect("session_state")
    grace, _ = await JsonClient.join_with(server, sid, "host-x", "Grace", host)
    cells = (await api.get(f"/api/v1/sessions/{sid}/notebook.ipynb", token=host)).json["cells"]
    answer, tests = cells[0]["id"], cells[1]["id"]
    # The candidate's answer, run, then the visible tests: everyone sees how they went.
    await candidate.send("code_update", {"code": "def add(a, b):\n    return abs(a) + b\n"})
    await grace.expect("code_update")
    await candidate.send("execute", {"cell_id": answer})
    assert "test" not in await candidate.expect("execution_finished")
    await candidate.send("execute", {"cell_id": tests})
    for person in (candidate, grace):
        finished = await person.expect("execution_finished")
        while finished["cell_id"] != tests:
            finished = await person.expect("execution_finished")
        assert finished["test"] == {
            "grade_id": "tests",
            "points": 2.0,
            "score": 2.0,
            "passed": True,
        }
    # The hidden test was not run in the live kernel: it would have failed.
    # Grading: not the candidate's to ask; the host's, over the socket too.
    await candidate.send("grade", {})
    refused = await candidate.expect("error")
    assert refused["code"] == "forbidden" and "interviewer" in refused["message"]
    await grace.send("grade", {})
    graded = await grace.expect("grade_finished")
    assert graded["score"] == 1 and graded["max_score"] == 3
    assert SECRET in next(r["error"] for r in graded["results"] if r["grade_id"] == "tests")
    await candidate.aclose()
    await grace.aclose()


async def test_tests_are_locked_for_the_candidate_and_refusing_keeps_every_copy_the_same(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid, host = session["session_id"], session["host_token"]
    alan = await register(api, sid, "Alan")
    token = alan["participant_token"]
    yjs = await YjsClient.connect(server, sid, client_id=alan["client_id"], participant_token=token)
    watcher = await join_json(server, sid, alan["client_id"], participant_token=token)
    await watcher.expect("session_state")
    grace = await YjsClient.connect(server, sid, client_id="host-y", host_token=host)
    await eventually(lambda: yjs.cell_count == 3 and grace.cell_count == 3, "sync")

    def sources(client: YjsClient) -> list[str]:
        return [str(c["source"]) for c in YNotebook(client.doc).get()["cells"]]

    before = sources(grace)
    cells = YNotebook(yjs.doc).ycells
    # Typing into a test: undone, for everyone; the candidate's JSON connection is told.
    cells[1]["source"].insert(0, "pass  # ")
    refused = await watcher.expect("error")
    assert refused["code"] == "cell_locked" and "interviewer" in refused["message"]
    await eventually(lambda: sources(yjs) == before == sources(grace), "the edit undone")
    # Unlocking it in its metadata, or deleting it: the same.
    nbgrader = dict(cells[2]["metadata"]["nbgrader"])
    cells[2]["metadata"]["nbgrader"] = nbgrader | {"grade": False}
    assert (await watcher.expect("error"))["code"] == "cell_locked"
    del YNotebook(yjs.doc).ycells[2]
    assert (await watcher.expect("error"))["code"] == "cell_locked"
    await eventually(lambda: sources(yjs) == before == sources(grace), "both undone")
    assert YNotebook(grace.doc).ycells[2]["metadata"]["nbgrader"]["grade"] is True
    # Over the JSON socket too.
    test_id = str(YNotebook(grace.doc).ycells[1]["id"])
    await watcher.send("delete_cell", {"cell_id": test_id})
    assert (await watcher.expect("error"))["code"] == "cell_locked"
    # The answer is the candidate's; the tests are the host's to change.
    cells[0]["source"].insert(0, "# mine\n")
    YNotebook(grace.doc).ycells[1]["source"].insert(0, "# the host's\n")
    await eventually(
        lambda: (
            sources(yjs) == sources(grace)
            and sources(grace)[0].startswith("# mine")
            and sources(grace)[1].startswith("# the host's")
        ),
        "both kept",
    )
    await watcher.aclose()
    await yjs.close()
    await grace.close()


async def test_gradings_are_in_the_record_and_the_hosts_export_only(
    api: Api, session: dict[str, Any]
) -> None:
    sid, host = session["session_id"], session["host_token"]
    alan = await register(api, sid, "Alan")
    first = (await api.post(f"/api/v1/sessions/{sid}/grades", token=host)).json
    second = (await api.post(f"/api/v1/sessions/{sid}/grades", token=host)).json
    timeline = (await api.get(f"/api/v1/sessions/{sid}/timeline", token=host)).json
    grades = [e for e in timeline["events"] if e["kind"] == "grade"]
    assert [g["id"] for g in grades] == [first["id"], second["id"]]
    assert grades[0]["results"][0]["grade_id"] == "tests" and grades[0]["max_score"] == 3
    times = [e["at"] for e in timeline["events"]]
    assert times == sorted(times)
    exported = (await api.get(f"/api/v1/sessions/{sid}/notebook.ipynb", token=host)).json
    assert [g["id"] for g in exported["metadata"]["kernelpad"]["grades"]] == [
        first["id"],
        second["id"],
    ]
    # The candidate's copy, after the end: no grading, nothing hidden.
    await api.delete(f"/api/v1/sessions/{sid}", token=host)
    theirs = await api.get(
        f"/api/v1/sessions/{sid}/notebook.ipynb", token=alan["participant_token"]
    )
    assert theirs.status == 200 and "grades" not in theirs.json["metadata"]["kernelpad"]
    nothing_hidden(theirs.body.decode())
    # Grading still works once the interview has ended (its kernels are its own).
    after = await api.post(f"/api/v1/sessions/{sid}/grades", token=host)
    assert after.status == 201 and after.json["max_score"] == 3
