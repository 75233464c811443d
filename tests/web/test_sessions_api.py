"""The sessions, languages and health endpoints of SEED_API.md, success and error paths, against a
real server on loopback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, eventually, make_settings, running_server
from tests.web.clients import JsonClient

ADMIN = "admin-token-for-tests"


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        cors_origins=["http://interviews.example"],
        max_request_size=4096,
        max_participants_per_session=5,
        session_id_length=16,
        frontend_url="http://pad.example/",
        admin_token=ADMIN,
    )


def assert_error(response: Any, status: int, code: str, *words: str) -> dict[str, Any]:
    assert response.status == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    error: dict[str, Any] = response.json["error"]
    assert error["code"] == code
    for word in words:
        assert word in error["message"], error["message"]
    return error


# Creating sessions


async def test_create_session_returns_details_and_host_token(api: Api) -> None:
    response = await api.post(
        "/api/v1/sessions",
        {"host_name": "Ada", "session_name": "Backend loop", "max_participants": 3},
    )
    assert response.status == 201
    body = response.json
    assert len(body["session_id"]) == 16
    assert set(body["session_id"]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert body["join_url"] == f"http://pad.example/s/{body['session_id']}"
    assert response.headers["Location"] == f"/api/v1/sessions/{body['session_id']}"
    assert body["session_name"] == "Backend loop"
    assert body["host_name"] == "Ada"
    assert body["language"] == "python"
    assert "def solve" in body["code"]
    assert body["status"] == "active"
    assert body["max_participants"] == 3
    assert body["participant_count"] == 1
    assert body["participants"][0]["role"] == "host"
    assert len(body["host_token"]) >= 32


async def test_defaults_come_from_settings(api: Api) -> None:
    body = await api.create_session()
    assert body["max_participants"] == 5
    assert body["session_name"] == "Interview with Grace"


async def test_session_ids_and_tokens_are_unique(api: Api) -> None:
    bodies = [await api.create_session() for _ in range(5)]
    assert len({b["session_id"] for b in bodies}) == 5
    assert len({b["host_token"] for b in bodies}) == 5


async def test_host_token_is_never_shown_again(api: Api) -> None:
    created = await api.create_session()
    token = created["host_token"]
    details = await api.get(f"/api/v1/sessions/{created['session_id']}")
    listing = await api.get("/api/v1/sessions?limit=100", token=ADMIN)
    assert token not in details.body.decode()
    assert token not in listing.body.decode()
    assert "host_token" not in details.json


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "host_name"),
        ({"host_name": ""}, "host_name"),
        ({"host_name": "   "}, "host_name"),
        ({"host_name": "Ada\u0000"}, "host_name"),
        ({"host_name": "Ada", "session_name": "\t\n"}, "session_name"),
        ({"host_name": 42}, "host_name"),
        ({"host_name": "Ada", "max_participants": "3"}, "max_participants"),
        ({"host_name": "Ada", "max_participants": 0}, "max_participants"),
        ({"host_name": "Ada", "initial_language": ["python"]}, "initial_language"),
        ({"host_name": "Ada", "languag": "python"}, "languag"),
    ],
)
async def test_create_rejects_invalid_fields_naming_them(
    api: Api, body: dict[str, Any], field: str
) -> None:
    error = assert_error(await api.post("/api/v1/sessions", body), 422, "validation_error", field)
    assert error["details"][0]["field"] == field


async def test_create_rejects_unknown_language_listing_the_known(api: Api) -> None:
    response = await api.post("/api/v1/sessions", {"host_name": "Ada", "initial_language": "cobol"})
    assert_error(response, 422, "unknown_language", "'cobol'", "python")


async def test_create_rejects_more_participants_than_allowed(api: Api) -> None:
    response = await api.post("/api/v1/sessions", {"host_name": "Ada", "max_participants": 6})
    assert_error(response, 422, "invalid_value", "at most 5", "MAX_PARTICIPANTS_PER_SESSION")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
async def test_create_rejects_malformed_json(api: Api, body: bytes) -> None:
    response = await api.post("/api/v1/sessions", body=body)
    if body:
        assert_error(response, 400, "invalid_json", "not valid JSON")
    else:
        assert_error(response, 400, "invalid_json", "JSON object")


async def test_create_rejects_deeply_nested_json(api: Api) -> None:
    response = await api.post("/api/v1/sessions", body=b"[" * 2000 + b"]" * 2000)
    assert_error(response, 400, "invalid_json", "nested too deeply")


async def test_names_are_trimmed(api: Api) -> None:
    body = await api.create_session(host_name="  Ada  ", session_name=" Loop ")
    assert (body["host_name"], body["session_name"]) == ("Ada", "Loop")


async def test_create_rejects_a_body_that_is_not_an_object(api: Api) -> None:
    response = await api.post("/api/v1/sessions", ["Ada"])
    assert_error(response, 400, "invalid_json", "JSON object")


async def test_oversized_body_gets_413_and_the_server_goes_on(api: Api) -> None:
    response = await api.post("/api/v1/sessions", {"host_name": "A" * 10_000})
    assert_error(response, 413, "payload_too_large", "4096 bytes")
    assert (await api.get("/api/v1/health")).status == 200


# Reading and listing


async def test_get_unknown_session_is_404_naming_it(api: Api) -> None:
    assert_error(await api.get("/api/v1/sessions/nope-nope"), 404, "session_not_found", "nope-nope")


async def test_listing_sessions_needs_the_admin_token(api: Api, tmp_path: Path) -> None:
    assert_error(await api.get("/api/v1/sessions"), 401, "not_authenticated", "ADMIN_TOKEN")
    assert_error(await api.get("/api/v1/sessions", token="nope"), 403, "forbidden", "ADMIN_TOKEN")
    # Without ADMIN_TOKEN nobody can list: the list holds every interview's join link.
    async with running_server(make_settings(tmp_path / "d", kernel_pool_size={})) as other:
        refused = await other.api.get("/api/v1/sessions", token="anything")
        assert_error(refused, 403, "forbidden", "ADMIN_TOKEN")


async def test_list_sessions_paginates_newest_first(api: Api) -> None:
    mine = [(await api.create_session(session_name=f"page-{i}"))["session_id"] for i in range(3)]
    first = (await api.get("/api/v1/sessions?limit=2", token=ADMIN)).json
    assert first["limit"] == 2 and first["offset"] == 0
    assert [s["session_id"] for s in first["sessions"]] == mine[::-1][:2]
    second = (await api.get("/api/v1/sessions?limit=2&offset=2", token=ADMIN)).json
    assert second["sessions"][0]["session_id"] == mine[0]
    assert first["total"] == second["total"] >= 3
    summary = first["sessions"][0]
    assert summary["participant_count"] == 1
    for hidden in ("code", "participants", "host_token"):
        assert hidden not in summary


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("offset=9223372036854775808", "offset"),
        ("status=gone", "status"),
        ("colour=red", "colour"),
    ],
)
async def test_list_rejects_bad_query(api: Api, query: str, field: str) -> None:
    assert_error(
        await api.get(f"/api/v1/sessions?{query}", token=ADMIN), 422, "validation_error", field
    )


# Ending


async def test_end_session_needs_the_host_token(api: Api) -> None:
    created = await api.create_session()
    path = f"/api/v1/sessions/{created['session_id']}"
    assert_error(await api.delete(path), 401, "not_authenticated", "host token")
    assert_error(
        await api.delete(path, token="wrong"), 403, "forbidden", "not this interview's host token"
    )
    assert_error(
        await api.delete(path, headers={"Authorization": f"Basic {created['host_token']}"}),
        401,
        "not_authenticated",
    )
    assert (await api.get(path)).json["status"] == "active"

    ended = await api.delete(path, token=created["host_token"])
    assert ended.status == 200
    assert ended.json["status"] == "ended"
    assert ended.json["end_reason"] == "ended by host"
    assert ended.json["ended_at"] is not None
    assert (await api.get(path)).json["status"] == "ended"
    assert_error(
        await api.delete(path, token=created["host_token"]), 409, "session_ended", "already"
    )
    listed = (await api.get("/api/v1/sessions?status=ended&limit=100", token=ADMIN)).json[
        "sessions"
    ]
    assert created["session_id"] in [s["session_id"] for s in listed]


async def test_end_unknown_session_is_404(api: Api) -> None:
    assert_error(await api.delete("/api/v1/sessions/missing", token="x"), 404, "session_not_found")


# Languages, health, unknown paths


async def test_languages_come_from_installed_kernelspecs(api: Api) -> None:
    # The version is what a started kernel reports: make sure one has started.
    await api.execute((await api.create_session())["session_id"], "1")
    languages = (await api.get("/api/v1/languages")).json["languages"]
    python = next(lang for lang in languages if lang["id"] == "python")
    assert python["kernel_name"] == "python3"
    assert python["file_extension"] == ".py"
    assert python["version"].startswith("3.")


async def test_template_of_a_language(api: Api) -> None:
    body = (await api.get("/api/v1/languages/python/template")).json
    assert body["language"] == "python"
    assert "def solve" in body["template"]
    compile(body["template"], "template.py", "exec")


async def test_template_of_an_unknown_language_is_404(api: Api) -> None:
    assert_error(
        await api.get("/api/v1/languages/klingon/template"), 404, "unknown_language", "klingon"
    )


async def test_health_reports_sessions_and_kernels(api: Api) -> None:
    before = (await api.get("/api/v1/health")).json
    sid = (await api.create_session())["session_id"]
    await api.execute(sid, "1")
    body = (await api.get("/api/v1/health")).json
    assert body["status"] == "ok"
    assert body["sessions_active"] == before["sessions_active"] + 1
    assert body["kernels_running"] == before["kernels_running"] + 1
    assert body["executions_running"] == body["executions_queued"] == 0
    await eventually(lambda: _pooled(api), "the pool to refill to its size of 1")
    assert body["version"]


async def _pooled(api: Api) -> bool:
    pooled: int = (await api.get("/api/v1/health")).json["kernels_pooled"]
    return pooled == 1


async def test_unknown_endpoint_is_json_404(api: Api) -> None:
    assert_error(await api.get("/api/v1/nothing-here"), 404, "not_found", "/api/v1/nothing-here")


# CORS


async def test_cors_allows_only_configured_origins(api: Api) -> None:
    allowed = await api.get("/api/v1/health", headers={"Origin": "http://interviews.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://interviews.example"
    denied = await api.get("/api/v1/health", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in denied.headers


async def test_cors_preflight(api: Api) -> None:
    ok = await api.request(
        "OPTIONS",
        "/api/v1/sessions",
        headers={"Origin": "http://interviews.example", "Access-Control-Request-Method": "POST"},
    )
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert "Authorization" in ok.headers["Access-Control-Allow-Headers"]
    # A path with a parameter, and the methods its handler has.
    one = await api.request(
        "OPTIONS", "/api/v1/sessions/abc", headers={"Origin": "http://interviews.example"}
    )
    assert one.status == 204
    assert one.headers["Access-Control-Allow-Methods"] == "GET, PATCH, DELETE"
    refused = await api.request(
        "OPTIONS", "/api/v1/sessions", headers={"Origin": "http://evil.example"}
    )
    assert_error(refused, 403, "cors_origin", "http://evil.example")


# OpenAPI and docs


async def test_openapi_document_covers_every_route(server: RunningServer) -> None:
    from kernelpad.web.app import API_ROUTES

    doc = (await server.api.get("/openapi.json")).json
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {path for path, _ in API_ROUTES}
    create = doc["paths"]["/api/v1/sessions"]["post"]
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = doc["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert "host_name" in request_schema["required"]
    assert "201" in create["responses"] and "422" in create["responses"]
    delete = doc["paths"]["/api/v1/sessions/{session_id}"]["delete"]
    assert delete["security"] == [{"hostToken": []}]
    listing = doc["paths"]["/api/v1/sessions"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "offset", "status"}


async def test_openapi_document_is_valid(api: Api) -> None:
    from openapi_spec_validator import validate

    validate((await api.get("/openapi.json")).json)


@pytest.mark.parametrize(
    ("page", "asset"),
    [
        ("/docs", "/static/vendor/swagger-ui/swagger-ui-bundle.js"),
        ("/redoc", "/static/vendor/redoc/redoc.standalone.js"),
    ],
)
async def test_docs_pages_are_served_with_local_assets(api: Api, page: str, asset: str) -> None:
    response = await api.get(page)
    assert response.status == 200
    html = response.body.decode()
    assert asset in html
    assert "//cdn" not in html and "https://" not in html
    script = await api.get(asset)
    assert script.status == 200
    assert len(script.body) > 100_000


async def test_the_host_is_one_participant_however_it_joins(
    api: Api, server: RunningServer
) -> None:
    """The host made with the session is the one a host's page joins as (a first visit, a
    second tab): the session lists the host once, and counts who is connected."""
    created = await api.create_session(host_name="Ada")
    sid, token = created["session_id"], created["host_token"]
    [host] = created["participants"]
    path = f"/api/v1/sessions/{sid}/participants"
    first = await api.post(path, {"display_name": "Ada", "client_id": "c-tab-one"}, token=token)
    second = await api.post(path, {"display_name": "Ada"}, token=token)
    assert first.json["client_id"] == second.json["client_id"] == host["client_id"]
    session = (await api.get(f"/api/v1/sessions/{sid}")).json
    assert [p["role"] for p in session["participants"]] == ["host"]
    assert session["participant_count"] == 0  # nobody connected yet
    client, _ = await JsonClient.join_with(server, sid, host["client_id"], "Ada", token)
    await eventually(lambda: _count(api, sid, 1), "the host to count once it is connected")
    session = (await api.get(f"/api/v1/sessions/{sid}")).json
    assert [(p["role"], p["connected"]) for p in session["participants"]] == [("host", True)]
    client.close()


async def _count(api: Api, sid: str, count: int) -> bool:
    return bool((await api.get(f"/api/v1/sessions/{sid}")).json["participant_count"] == count)


async def test_each_participant_has_a_colour_of_their_own(api: Api) -> None:
    created = await api.create_session(host_name="Ada")
    sid, token = created["session_id"], created["host_token"]
    path = f"/api/v1/sessions/{sid}/participants"
    joined = [(await api.post(path, {"display_name": name})).json for name in ("Alan", "Bea", "Cy")]
    again = await api.post(
        path,
        {"display_name": "Alan", "client_id": joined[0]["client_id"]},
        token=joined[0]["participant_token"],
    )
    assert again.json["colour"] == joined[0]["colour"]  # the same on coming back
    session = (await api.get(f"/api/v1/sessions/{sid}")).json
    colours = [p["colour"] for p in session["participants"]]
    assert len(colours) == 4 and len(set(colours)) == 4
    assert all(re.fullmatch(r"#[0-9a-f]{6}", colour) for colour in colours)
    assert colours[0] == created["participants"][0]["colour"]  # the host's, first
    timeline = (await api.get(f"/api/v1/sessions/{sid}/timeline", token=token)).json
    assert [p["colour"] for p in timeline["participants"]] == colours
