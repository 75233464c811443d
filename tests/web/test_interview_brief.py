"""What the host sets around the notebook: the question's statement beside it (with its
suggested length and the interview clock's start), a removed participant let back in, and
whether candidates may read the final notebook once the interview has ended."""

from __future__ import annotations

from typing import Any

import pytest

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, make_settings
from tests.web.test_roles import join_json, register


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 0})


@pytest.fixture
async def session(api: Api) -> dict[str, Any]:
    return await api.create_session()


async def test_the_statement_is_everyones_and_the_hosts_to_change(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid, host = session["session_id"], session["host_token"]
    assert session["statement"] == "" and session["suggested_minutes"] is None
    assert session["started_at"] is None  # no candidate yet: the clock has not started
    alan = await register(api, sid, "Alan")
    client = await join_json(
        server, sid, alan["client_id"], participant_token=alan["participant_token"]
    )
    state = await client.expect("session_state")
    assert state["statement"] == "" and state["review_after_end"] is True
    path = f"/api/v1/sessions/{sid}"
    change = {"statement": "# Reverse\n\nReverse a *list*.\n\tTabs stay.", "suggested_minutes": 25}
    assert (await api.patch(path, change)).status == 401
    assert (await api.patch(path, change, token=alan["participant_token"])).status == 403
    changed = await api.patch(path, change, token=host)
    assert changed.status == 200, changed.body
    assert changed.json["statement"] == change["statement"]
    assert changed.json["suggested_minutes"] == 25
    brief = await client.expect("session_brief")
    assert brief == {"statement": change["statement"], "suggested_minutes": 25}
    shown = (await api.get(path)).json
    assert shown["statement"] == change["statement"] and shown["suggested_minutes"] == 25
    first = next(p for p in shown["participants"] if p["client_id"] == alan["client_id"])
    assert shown["started_at"] == first["joined_at"]
    # Whoever joins later is told at once.
    later = await join_json(
        server, sid, alan["client_id"], participant_token=alan["participant_token"]
    )
    assert (await later.expect("session_state"))["statement"] == change["statement"]
    # 0 minutes: none said; the statement stays as it was.
    cleared = await api.patch(path, {"suggested_minutes": 0}, token=host)
    assert cleared.json["suggested_minutes"] is None
    assert cleared.json["statement"] == change["statement"]
    for bad in (
        {"statement": "x" * 20_001},
        {"statement": "bell \x07"},
        {"suggested_minutes": 601},
        {"suggested_minutes": -1},
        {"statement": 3},
    ):
        refused = await api.patch(path, bad, token=host)
        assert refused.status == 422, (bad, refused.body)
        assert refused.json["error"]["message"]
    assert (await api.get(path)).json["statement"] == change["statement"]
    await client.aclose()
    await later.aclose()


async def test_a_statement_given_at_the_start_and_kept_in_the_export(api: Api) -> None:
    created = await api.create_session(statement="Sort *fast*.", suggested_minutes=15)
    sid, host = created["session_id"], created["host_token"]
    assert created["statement"] == "Sort *fast*." and created["suggested_minutes"] == 15
    exported = await api.get(f"/api/v1/sessions/{sid}/notebook.ipynb", token=host)
    ours = exported.json["metadata"]["kernelpad"]
    assert ours["statement"] == "Sort *fast*." and ours["minutes"] == 15
    # A notebook exported is a question: started from, it brings its statement back.
    again = await api.create_session(notebook=exported.json)
    assert again["statement"] == "Sort *fast*." and again["suggested_minutes"] == 15


async def test_the_host_lets_a_removed_participant_back_in(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid, host = session["session_id"], session["host_token"]
    alan = await register(api, sid, "Alan")
    token = alan["participant_token"]
    path = f"/api/v1/sessions/{sid}/participants/{alan['client_id']}"
    readmission = f"{path}/readmission"
    # Nobody to let back in yet.
    missing = await api.post(readmission, token=host)
    assert missing.status == 404 and missing.json["error"]["code"] == "participant_not_found"
    assert (await api.delete(path, token=host)).status == 200
    refused = await api.post(
        f"/api/v1/sessions/{sid}/participants",
        {"display_name": "Alan", "client_id": alan["client_id"]},
        token=token,
    )
    assert refused.status == 403 and refused.json["error"]["code"] == "participant_removed"
    # Only the host lets anyone back in.
    assert (await api.post(readmission)).status == 401
    assert (await api.post(readmission, token=token)).status == 403
    back = await api.post(readmission, token=host)
    assert back.status == 200, back.body
    assert back.json["removed"] is False and back.json["client_id"] == alan["client_id"]
    # Back as themselves, with the token they had; nobody else takes their place.
    thief = await api.post(
        f"/api/v1/sessions/{sid}/participants",
        {"display_name": "Mallory", "client_id": alan["client_id"]},
    )
    assert thief.status == 403
    again = await api.post(
        f"/api/v1/sessions/{sid}/participants",
        {"display_name": "Alan", "client_id": alan["client_id"]},
        token=token,
    )
    assert again.status == 201, again.body
    client = await join_json(server, sid, alan["client_id"], participant_token=token)
    state = await client.expect("session_state")
    assert alan["client_id"] in {p["client_id"] for p in state["participants"]}
    listed = (await api.get(f"/api/v1/sessions/{sid}")).json["participants"]
    assert {p["client_id"]: p["removed"] for p in listed}[alan["client_id"]] is False
    await client.aclose()


@pytest.mark.parametrize("review", [True, False])
async def test_candidates_read_the_final_notebook_if_the_host_lets_them(
    api: Api, session: dict[str, Any], review: bool
) -> None:
    sid, host = session["session_id"], session["host_token"]
    alan = await register(api, sid, "Alan")
    bo = await register(api, sid, "Bo")
    notebook = f"/api/v1/sessions/{sid}/notebook.ipynb"
    # While the interview goes on the candidate reads it live, not here.
    assert (await api.get(notebook, token=alan["participant_token"])).status == 403
    changed = await api.patch(f"/api/v1/sessions/{sid}", {"review_after_end": review}, token=host)
    assert changed.status == 200 and changed.json["review_after_end"] is review
    await api.delete(f"/api/v1/sessions/{sid}/participants/{bo['client_id']}", token=host)
    assert (await api.delete(f"/api/v1/sessions/{sid}", token=host)).status == 200
    read = await api.get(notebook, token=alan["participant_token"])
    if review:
        assert read.status == 200, read.body
        assert read.json["cells"] and "notes" not in read.json["metadata"]["kernelpad"]
    else:
        assert read.status == 403 and read.json["error"]["message"]
    # A removed participant, or no token, reads nothing; the host always.
    assert (await api.get(notebook, token=bo["participant_token"])).status == 403
    assert (await api.get(notebook)).status == 401
    assert (await api.get(notebook, token=host)).status == 200
