"""The entry-point matrix: every limit and every permission, through every way in that offers
the action, must get the same answer.

kernelpad is reached three ways: the REST API, the JSON socket (``/ws/sessions/{id}``) and the
Yjs socket (``/ws/yjs/{id}``). A rule that one of them enforces and another forgets is a hole
that no test of a single entry point sees: MAX_CODE_SIZE was checked by the REST execute only,
while the JSON socket's ``execute`` ran code of any size (sent as ``code``, or left in a cell
through Yjs or ``code_update``). So each rule is tried here through each entry point that has
the action, and each cell is its own test case, ``test_<rule>[<entry point>]``: a failure names
the entry point that disagrees.

"The same answer" in each protocol: REST refuses with an HTTP status and an error ``code`` in
the body; the JSON socket sends an ``error`` message with the same ``code`` (or, where it
cannot go on, closes with a close code); the Yjs socket has no error messages, so it refuses a
connection with a close code and leaves out an edit it does not take. Each cell compares one
:class:`Answer`: allowed or refused, with whichever of code, HTTP status and close code that
protocol carries.

rule: action                     REST                   JSON socket              Yjs socket
-------------------------------  ---------------------  -----------------------  ------------------
1. code over MAX_CODE_SIZE:      422 invalid_value      error invalid_value (a)  n/a: no execute
   execute
   code of MAX_CODE_SIZE         200                    runs                     n/a
2. runs per minute used up:      429 rate_limited       error rate_limited       n/a: no execute
   execute (candidate, host)
3. ENABLE_SERVER_EXECUTION       403                    error                    n/a: no execute
   =false: execute (candidate,   execution_disabled     execution_disabled
   host); interrupt,             (n/a: not offered)     (candidate, host)
   restart_kernel, input_reply
4. candidate_execution=false
   execute, candidate            403                    error                    n/a: no execute
                                 execution_disabled     execution_disabled
   execute, host                 200                    runs                     n/a: no execute
   interrupt, restart_kernel,    n/a: not offered       candidate: error         n/a: not offered
   input_reply                                          execution_disabled;
                                                        host: let through (b)
5. editing_locked=true: edit     n/a: no edit action    candidate: error         candidate: not
                                                        editing_locked, not      taken (no error
                                                        taken; host: taken       message); host:
                                                                                 taken
6. host only: notes GET and      no token: 401          n/a: not offered         n/a: not offered
   PUT, timeline, notebook,      not_authenticated;
   executions, settings PATCH,   a candidate's or a
   participant DELETE,           wrong token: 403
   session DELETE                forbidden; the host
                                 token: 200
7. max_participants reached:     n/a: registering       newcomer: error          newcomer: close
   join, connect                 connects nobody        session_full; one        4403; one in
                                                        in already: joins        already: connects
8. removed by the host:          403                    error                    close 4403
   register, join, connect       participant_removed    participant_removed
   (with its token)
9. the host's client_id          403 forbidden (the     error forbidden (the     close 4403 (the
   without the host token:       host token: 201)       host token: joins)       host token:
   register, join, connect                                                       connects)
10. session ended: execute,      409 session_ended      connect: close 4410;     close 4410
   register; connect; a                                 open: session_ended,     (connect, open)
   connection open then                                 close 4410
11. message over                 413                    close 1009               close 1009
   max_request_size (one of      payload_too_large
   that size is taken)

(a) sent as ``code``; as ``cell_id`` and ``code``; as ``cell_id`` alone, of a cell made too long
    through Yjs or through ``code_update``.
(b) the rule is checked first: interrupt and input_reply, let through with nothing to act on,
    answer ``not_running`` and ``no_input_request``; restart_kernel announces the restart.

Refusals need no kernel: only the few "allowed" runs use one, and they share sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from pycrdt import Awareness, create_awareness_message, create_sync_message, create_update_message
from tornado.websocket import WebSocketClosedError, websocket_connect

from kernelpad.config import Settings
from tests.conftest import Api, Response, RunningServer, eventually, make_settings, running_server
from tests.web.clients import JsonClient, YjsClient, ws_url

MAX_CODE_SIZE = 1000
RUNS_PER_MINUTE = 2
MAX_MESSAGE = 8192  # bytes: room for code over MAX_CODE_SIZE in a request
# A Python comment: quick to run if it is (wrongly) let through.
TOO_LONG = "#" * (MAX_CODE_SIZE + 1)
LONGEST = "#" * MAX_CODE_SIZE

# JSON errors that say the action was let through but found nothing to act on.
NOTHING_TO_DO = {"not_running", "no_input_request"}

Session = dict[str, Any]
Probe = Callable[[], Awaitable["Answer"]]
Message = TypeVar("Message", str, bytes)


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One server for every rule but ENABLE_SERVER_EXECUTION: small limits, so that a cell
    can go over them cheaply. Two pooled kernels serve the few runs that are allowed."""
    return make_settings(
        tmp_path_factory.mktemp("data"),
        max_code_size=MAX_CODE_SIZE,
        rate_limit_executions_per_minute=RUNS_PER_MINUTE,
        max_request_size=MAX_MESSAGE,
        kernel_pool_size={"python": 2},
    )


@pytest.fixture(scope="module")
async def no_execution_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningServer]:
    """A server with ENABLE_SERVER_EXECUTION=false (and so no kernels at all)."""
    settings = make_settings(
        tmp_path_factory.mktemp("no-execution"),
        enable_server_execution=False,
        kernel_pool_size={"python": 0},
    )
    async with running_server(settings) as running:
        yield running


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    """Closes what a test opened (its connections), when it ends."""
    async with AsyncExitStack() as stack:
        yield stack


# Answers


@dataclass(frozen=True)
class Answer:
    """What an entry point answered, in the terms the three share: allowed or refused, and
    whatever else its protocol carries (``None`` where it carries nothing)."""

    allowed: bool
    code: str | None = None  # the error code: REST body, JSON ``error`` message
    status: int | None = None  # REST: the HTTP status
    close: int | None = None  # sockets: the close code, if the server closed the connection


def allowed(code: str | None = None, *, status: int | None = None) -> Answer:
    return Answer(True, code, status)


def refused(
    code: str | None = None, *, status: int | None = None, close: int | None = None
) -> Answer:
    return Answer(False, code, status, close)


def check(entry: str, answer: Answer, expected: Answer) -> None:
    """The comparison every cell makes, keyed by its entry point so the report names it."""
    assert {entry: answer} == {entry: expected}


# REST


def rest(response: Response) -> Answer:
    """A REST response as an answer: 2xx allowed, else refused with its error code."""
    if response.status < 400:
        return allowed(status=response.status)
    error = response.json["error"]["code"]
    if response.status == 429:
        # A client told to slow down is told for how long.
        assert int(response.headers["Retry-After"]) >= 1
    return refused(error, status=response.status)


async def rest_execute(api: Api, session_id: str, code: str, token: str | None = None) -> Answer:
    return rest(
        await api.post(f"/api/v1/sessions/{session_id}/execute", {"code": code}, token=token)
    )


async def rest_register(
    api: Api, session_id: str, client_id: str | None = None, token: str | None = None
) -> Answer:
    body = {"display_name": "Someone", **({"client_id": client_id} if client_id else {})}
    return rest(await api.post(f"/api/v1/sessions/{session_id}/participants", body, token=token))


async def register(api: Api, session_id: str, name: str) -> dict[str, Any]:
    """A new candidate of the session, with its participant token."""
    response = await api.post(f"/api/v1/sessions/{session_id}/participants", {"display_name": name})
    assert response.status == 201, response.body
    return response.json  # type: ignore[no-any-return]


async def first_cell_id(api: Api, session: Session) -> str:
    notebook = await api.get(
        f"/api/v1/sessions/{session['session_id']}/notebook.ipynb", token=session["host_token"]
    )
    return str(notebook.json["cells"][0]["id"])


async def code_of(api: Api, session_id: str) -> str:
    """The session's code as REST reads it (the live document, while someone is connected)."""
    return str((await api.get(f"/api/v1/sessions/{session_id}")).json["code"])


# The JSON socket

Accept = Callable[[str, dict[str, Any]], bool]


def _never(kind: str, data: dict[str, Any]) -> bool:
    return False


# For each message a client sends, the message that says it was let through (an error
# message says it was not).
ACCEPTED_BY: dict[str, Accept] = {
    "join_session": lambda kind, data: kind == "session_state",
    # A run announces itself at once when its kernel is to be started, else when it starts.
    "execute": lambda kind, data: (
        kind == "execution_started" or (kind == "kernel_status" and data.get("state") == "starting")
    ),
    "restart_kernel": lambda kind, data: (
        kind == "kernel_status" and data.get("state") == "restarting"
    ),
    # With a base_version, the sender too is told the version its change made.
    "code_update": lambda kind, data: kind == "code_update",
    "interrupt": _never,
    "input_reply": _never,
}


async def _read(client: JsonClient) -> dict[str, Any] | None:
    raw = await asyncio.wait_for(client.conn.read_message(), 10)
    if raw is None:
        return None
    message: dict[str, Any] = json.loads(raw)
    return message


async def _settle(client: JsonClient) -> list[str]:
    """The error codes sent to ``client`` for what it sent so far: a connection's messages
    are handled in order, so once a message sent now is answered, so are all before it."""
    with contextlib.suppress(WebSocketClosedError):
        await client.send("test_barrier", {})  # no such type: answered with unknown_type
    codes = []
    while (message := await _read(client)) is not None:
        if message["type"] == "error":
            if message["data"]["code"] == "unknown_type":
                break
            codes.append(message["data"]["code"])
    return codes


async def _reply(client: JsonClient, accepted: Accept) -> tuple[Answer, dict[str, Any]]:
    """The server's answer to the message just sent, and the message that let it through."""
    ended = None
    while (message := await _read(client)) is not None:
        kind, data = message["type"], message["data"]
        if accepted(kind, data):
            return allowed(), data
        if kind == "session_ended":
            ended = "session_ended"
        elif kind == "error" and data["code"] in NOTHING_TO_DO:
            return allowed(data["code"]), data
        elif kind == "error" and data["code"] != "throttled":
            return refused(data["code"]), data
    return refused(ended, close=client.conn.close_code), {}


async def json_raw(client: JsonClient, raw: str, accepted: Accept) -> Answer:
    """Send a message as it is; the answer to it (not to anything sent before)."""
    await _settle(client)
    with contextlib.suppress(WebSocketClosedError):
        await client.conn.write_message(raw)
    return (await _reply(client, accepted))[0]


async def json_send(client: JsonClient, kind: str, data: dict[str, Any]) -> Answer:
    return await json_raw(client, json.dumps({"type": kind, "data": data}), ACCEPTED_BY[kind])


async def json_run(client: JsonClient, data: dict[str, Any]) -> Answer:
    """Send ``execute``; a run let through is waited for (whatever its outcome: only being let
    through is the answer), so that none is left running into the next test."""
    answer = await json_send(client, "execute", data)
    if answer.allowed:
        await client.expect("execution_finished")
    return answer


async def json_join(
    server: RunningServer, stack: AsyncExitStack, session_id: str, client_id: str, **tokens: str
) -> tuple[Answer, JsonClient, dict[str, Any]]:
    """Connect and join; the answer, the client and its ``session_state`` (if it joined)."""
    conn = await websocket_connect(ws_url(server, f"/ws/sessions/{session_id}"))
    stack.callback(conn.close)
    client = JsonClient(conn)
    data = {"client_id": client_id, "display_name": "Someone", **tokens}
    with contextlib.suppress(WebSocketClosedError):
        await client.send("join_session", data)
    answer, state = await _reply(client, ACCEPTED_BY["join_session"])
    return answer, client, state


async def joins(
    server: RunningServer, stack: AsyncExitStack, session_id: str, client_id: str, **tokens: str
) -> Answer:
    """The answer to joining over the JSON socket."""
    return (await json_join(server, stack, session_id, client_id, **tokens))[0]


async def json_edit(client: JsonClient, code: str, base_version: int) -> Answer:
    return await json_send(client, "code_update", {"code": code, "base_version": base_version})


# The Yjs socket


async def yjs_connect(
    server: RunningServer, stack: AsyncExitStack, session_id: str, **params: str
) -> tuple[Answer, YjsClient | None]:
    """Connect (named by ``params`` as y-websocket's ``params`` would); a client synced with
    the session's notebook if let in. The server greets whom it lets in, and closes on whom
    it does not: the first message tells which."""
    query = urllib.parse.urlencode(params)
    conn = await websocket_connect(ws_url(server, f"/ws/yjs/{session_id}?{query}"))
    stack.callback(conn.close)
    if await asyncio.wait_for(conn.read_message(), 10) is None:
        return refused(close=conn.close_code), None
    client = YjsClient(conn)
    stack.push_async_callback(client.close)
    await conn.write_message(create_sync_message(client.doc), binary=True)
    await eventually(lambda: client.cell_count > 0, "the Yjs client to sync")
    return allowed(), client


async def connects(
    server: RunningServer, stack: AsyncExitStack, session_id: str, **params: str
) -> Answer:
    """The answer to connecting to the Yjs socket."""
    return (await yjs_connect(server, stack, session_id, **params))[0]


async def yjs_client(
    server: RunningServer, stack: AsyncExitStack, session_id: str, **params: str
) -> YjsClient:
    answer, client = await yjs_connect(server, stack, session_id, **params)
    assert answer == allowed() and client is not None
    return client


async def yjs_barrier(
    server: RunningServer, stack: AsyncExitStack, session_id: str, sender: YjsClient
) -> None:
    """Return once the server has handled all ``sender`` sent: an awareness message it sends
    now reaches another client only after those (one connection is read in order)."""
    watcher = await yjs_client(server, stack, session_id)
    presence = Awareness(sender.doc)
    presence.set_local_state({"barrier": True})
    update = presence.encode_awareness_update([presence.client_id])
    await sender.conn.write_message(create_awareness_message(update), binary=True)
    await eventually(lambda: presence.client_id in watcher.others.states, "the barrier")


async def in_document(
    server: RunningServer, api: Api, stack: AsyncExitStack, session_id: str, mark: str
) -> bool:
    """Whether ``mark`` is in the server's document, as REST and a fresh client see it."""
    fresh = await yjs_client(server, stack, session_id)
    code = await code_of(api, session_id)
    assert (mark in code) == (mark in fresh.source), (code, fresh.source)
    return mark in code


# Sessions with people in them


@dataclass
class Room:
    """A session with a registered candidate and the host connected to the JSON socket."""

    session: Session
    candidate_token: str
    candidate: JsonClient
    host: JsonClient
    cell_id: str

    @property
    def id(self) -> str:
        return str(self.session["session_id"])

    @property
    def host_token(self) -> str:
        return str(self.session["host_token"])


async def open_room(server: RunningServer, stack: AsyncExitStack, **rules: bool | int) -> Room:
    """A new session whose host has set ``rules`` (PATCH), with its candidate and host in."""
    api = server.api
    session = await api.create_session()
    sid, host_token = session["session_id"], session["host_token"]
    if rules:
        changed = await api.patch(f"/api/v1/sessions/{sid}", rules, token=host_token)
        assert changed.status == 200, changed.body
    alan = await register(api, sid, "Alan")
    joined, candidate, _ = await json_join(
        server, stack, sid, alan["client_id"], participant_token=alan["participant_token"]
    )
    assert joined == allowed()
    joined, host, _ = await json_join(server, stack, sid, "host-json", host_token=host_token)
    assert joined == allowed()
    return Room(
        session, alan["participant_token"], candidate, host, await first_cell_id(api, session)
    )


# 1. Code size


@pytest.fixture(scope="module")
async def longest_code_room(server: RunningServer) -> AsyncIterator[Room]:
    """A session for the two runs of code exactly MAX_CODE_SIZE long (its rate limit)."""
    async with AsyncExitStack() as stack:
        yield await open_room(server, stack)


CODE_SIZE = {
    "REST execute": refused("invalid_value", status=422),
    "JSON execute: code": refused("invalid_value"),
    "JSON execute: cell_id and code": refused("invalid_value"),
    "JSON execute: cell_id, cell made too long through Yjs": refused("invalid_value"),
    "JSON execute: cell_id, cell made too long through code_update": refused("invalid_value"),
    "REST execute, code of the longest size": allowed(status=200),
    "JSON execute, code of the longest size": allowed(),
}


@pytest.mark.parametrize("entry", CODE_SIZE)
async def test_code_size(
    entry: str, server: RunningServer, longest_code_room: Room, stack: AsyncExitStack
) -> None:
    """Code one character over MAX_CODE_SIZE is refused however it comes to be run: sent
    with the request, or already in the cell run (typed through either socket); code of
    exactly MAX_CODE_SIZE runs through both entry points."""
    api = server.api

    async def rest_too_long() -> Answer:
        return await rest_execute(api, (await api.create_session())["session_id"], TOO_LONG)

    async def json_too_long(by_cell: bool) -> Answer:
        room = await open_room(server, stack)
        cell = {"cell_id": room.cell_id} if by_cell else {}
        return await json_run(room.candidate, {**cell, "code": TOO_LONG})

    async def cell_typed_through_yjs() -> Answer:
        room = await open_room(server, stack)
        typist = await yjs_client(server, stack, room.id, client_id="typist")
        typist.insert(0, TOO_LONG + "\n")
        await eventually(
            lambda: _longer_than(api, room.id, MAX_CODE_SIZE), "the long cell in the document"
        )
        return await json_run(room.candidate, {"cell_id": room.cell_id})

    async def cell_typed_through_code_update() -> Answer:
        room = await open_room(server, stack)
        await room.candidate.send("code_update", {"code": TOO_LONG})
        # Handled before the execute sent after it (one connection is read in order).
        return await json_run(room.candidate, {"cell_id": room.cell_id})

    room = longest_code_room
    probes: dict[str, Probe] = {
        "REST execute": rest_too_long,
        "JSON execute: code": lambda: json_too_long(by_cell=False),
        "JSON execute: cell_id and code": lambda: json_too_long(by_cell=True),
        "JSON execute: cell_id, cell made too long through Yjs": cell_typed_through_yjs,
        "JSON execute: cell_id, cell made too long through code_update": (
            cell_typed_through_code_update
        ),
        "REST execute, code of the longest size": lambda: rest_execute(api, room.id, LONGEST),
        "JSON execute, code of the longest size": lambda: json_run(
            room.candidate, {"code": LONGEST}
        ),
    }
    check(entry, await probes[entry](), CODE_SIZE[entry])


async def _longer_than(api: Api, session_id: str, size: int) -> bool:
    return len(await code_of(api, session_id)) > size


# 2. Runs per minute


@pytest.fixture(scope="module")
async def spent_room(server: RunningServer) -> AsyncIterator[Room]:
    """A session whose every participant has used up their runs for the minute (the limit is
    each participant's): the candidate and the host on the JSON socket, and each role over
    REST without a participant."""
    async with AsyncExitStack() as stack:
        room = await open_room(server, stack)
        assert RUNS_PER_MINUTE == 2
        for n in range(RUNS_PER_MINUTE):
            assert await rest_execute(server.api, room.id, f"{n}") == allowed(status=200)
            assert await rest_execute(server.api, room.id, f"{n}", room.host_token) == allowed(
                status=200
            )
            assert await json_run(room.candidate, {"code": f"{n}"}) == allowed()
            assert await json_run(room.host, {"code": f"{n}"}) == allowed()
        yield room


RATE_LIMIT = {
    "REST execute, no token": refused("rate_limited", status=429),
    "REST execute, the host token": refused("rate_limited", status=429),
    "JSON execute: code, candidate": refused("rate_limited"),
    "JSON execute: cell_id, candidate": refused("rate_limited"),
    "JSON execute: code, host": refused("rate_limited"),
}


@pytest.mark.parametrize("entry", RATE_LIMIT)
async def test_rate_limit(entry: str, server: RunningServer, spent_room: Room) -> None:
    """Past RATE_LIMIT_EXECUTIONS_PER_MINUTE, a participant's runs are refused however they
    ask: the limit is each participant's, not an entry point's."""
    room = spent_room
    probes: dict[str, Probe] = {
        "REST execute, no token": lambda: rest_execute(server.api, room.id, "3"),
        "REST execute, the host token": lambda: rest_execute(
            server.api, room.id, "3", room.host_token
        ),
        "JSON execute: code, candidate": lambda: json_run(room.candidate, {"code": "3"}),
        "JSON execute: cell_id, candidate": lambda: json_run(
            room.candidate, {"cell_id": room.cell_id}
        ),
        "JSON execute: code, host": lambda: json_run(room.host, {"code": "3"}),
    }
    check(entry, await probes[entry](), RATE_LIMIT[entry])


# 3. ENABLE_SERVER_EXECUTION=false


@pytest.fixture(scope="module")
async def no_execution_room(no_execution_server: RunningServer) -> AsyncIterator[Room]:
    async with AsyncExitStack() as stack:
        yield await open_room(no_execution_server, stack)


SERVER_EXECUTION_OFF = {
    "REST execute, no token": refused("execution_disabled", status=403),
    "REST execute, the host token": refused("execution_disabled", status=403),
    "JSON execute: code, candidate": refused("execution_disabled"),
    "JSON execute: cell_id, candidate": refused("execution_disabled"),
    "JSON execute: code, host": refused("execution_disabled"),
    # Nothing runs, so nothing around a run either: not even the host's kernel controls.
    **{
        f"JSON {kind}, {who}": refused("execution_disabled")
        for kind in ("interrupt", "restart_kernel", "input_reply")
        for who in ("candidate", "host")
    },
}


@pytest.mark.parametrize("entry", SERVER_EXECUTION_OFF)
async def test_server_execution_off(
    entry: str, no_execution_server: RunningServer, no_execution_room: Room
) -> None:
    """With ENABLE_SERVER_EXECUTION=false nobody runs code, the host neither, by any way."""
    api, room = no_execution_server.api, no_execution_room
    probes: dict[str, Probe] = {
        "REST execute, no token": lambda: rest_execute(api, room.id, "1"),
        "REST execute, the host token": lambda: rest_execute(api, room.id, "1", room.host_token),
        "JSON execute: code, candidate": lambda: json_run(room.candidate, {"code": "1"}),
        "JSON execute: cell_id, candidate": lambda: json_run(
            room.candidate, {"cell_id": room.cell_id}
        ),
        "JSON execute: code, host": lambda: json_run(room.host, {"code": "1"}),
    }
    probes.update(control_probes(room, "JSON {kind}, {who}"))
    check(entry, await probes[entry](), SERVER_EXECUTION_OFF[entry])


# The kernel controls of the JSON socket, and what each sends.
CONTROLS: dict[str, dict[str, Any]] = {
    "interrupt": {},
    "restart_kernel": {},
    "input_reply": {"value": "x"},
}


def control_probes(room: Room, name: str) -> dict[str, Probe]:
    """A probe of each kernel control by the room's candidate and by its host, named by
    ``name`` (a format of ``kind`` and ``who``)."""
    return {
        name.format(kind=kind, who=who): functools.partial(json_send, client, kind, data)
        for kind, data in CONTROLS.items()
        for who, client in [("candidate", room.candidate), ("host", room.host)]
    }


# 4. The host's rule candidate_execution=false


@pytest.fixture(scope="module")
async def candidates_may_not_run(server: RunningServer) -> AsyncIterator[tuple[Room, Room]]:
    """Two sessions where candidates may not run code: one for runs (the host's two use a
    kernel), one for the kernel controls (so the host's restart_kernel finds no kernel to
    replace, and costs nothing)."""
    async with AsyncExitStack() as stack:
        runs = await open_room(server, stack, candidate_execution=False)
        controls = await open_room(server, stack, candidate_execution=False)
        yield runs, controls


CANDIDATE_EXECUTION_OFF = {
    "execute: REST, no token": refused("execution_disabled", status=403),
    "execute: REST, the candidate's token": refused("execution_disabled", status=403),
    "execute: REST, the host token": allowed(status=200),
    "execute: JSON, candidate": refused("execution_disabled"),
    "execute: JSON, host": allowed(),
    "interrupt: JSON, candidate": refused("execution_disabled"),
    "interrupt: JSON, host": allowed("not_running"),
    "restart_kernel: JSON, candidate": refused("execution_disabled"),
    "restart_kernel: JSON, host": allowed(),
    "input_reply: JSON, candidate": refused("execution_disabled"),
    "input_reply: JSON, host": allowed("no_input_request"),
}


@pytest.mark.parametrize("entry", CANDIDATE_EXECUTION_OFF)
async def test_candidate_execution_off(
    entry: str, server: RunningServer, candidates_may_not_run: tuple[Room, Room]
) -> None:
    """When the host turns running code off for candidates, a candidate can neither run nor
    control the kernel by any way, and the host still can."""
    api, (runs, controls) = server.api, candidates_may_not_run
    probes: dict[str, Probe] = {
        "execute: REST, no token": lambda: rest_execute(api, runs.id, "1"),
        "execute: REST, the candidate's token": lambda: rest_execute(
            api, runs.id, "1", runs.candidate_token
        ),
        "execute: REST, the host token": lambda: rest_execute(api, runs.id, "1", runs.host_token),
        "execute: JSON, candidate": lambda: json_run(runs.candidate, {"code": "1"}),
        "execute: JSON, host": lambda: json_run(runs.host, {"code": "1"}),
    }
    probes.update(control_probes(controls, "{kind}: JSON, {who}"))
    check(entry, await probes[entry](), CANDIDATE_EXECUTION_OFF[entry])


# 5. The host's rule editing_locked=true

EDITING_LOCKED = {
    "JSON code_update, candidate": refused("editing_locked"),
    "Yjs update, candidate": refused(),
    "JSON code_update, host": allowed(),
    "Yjs update, host": allowed(),
}


@pytest.mark.parametrize("entry", EDITING_LOCKED)
async def test_editing_locked(entry: str, server: RunningServer, stack: AsyncExitStack) -> None:
    """With editing locked, a candidate's change does not reach the server's document by
    either socket (the JSON one says so; Yjs has no way to, and drops it), and the host's
    does, by either."""
    api = server.api
    session = await api.create_session()
    sid, host_token = session["session_id"], session["host_token"]
    locked = await api.patch(f"/api/v1/sessions/{sid}", {"editing_locked": True}, token=host_token)
    assert locked.status == 200, locked.body
    mark = f"# {entry}\n"

    async def json_edit_as(**tokens: str) -> Answer:
        joined, client, state = await json_join(server, stack, sid, "editor", **tokens)
        assert joined == allowed()
        answer = await json_edit(client, mark + state["code"], state["version"])
        taken = await in_document(server, api, stack, sid, mark)
        return Answer(taken, answer.code, close=answer.close)

    async def yjs_edit_as(**params: str) -> Answer:
        editor = await yjs_client(server, stack, sid, client_id="editor", **params)
        editor.insert(0, mark)
        # The edit, sent and written now (not left to the client's own sending, which is
        # scheduled): it is in what the server reads before the barrier.
        update = create_update_message(editor.doc.get_update())
        await editor.conn.write_message(update, binary=True)
        await yjs_barrier(server, stack, sid, editor)
        return Answer(await in_document(server, api, stack, sid, mark))

    probes: dict[str, Probe] = {
        "JSON code_update, candidate": json_edit_as,
        "Yjs update, candidate": yjs_edit_as,
        "JSON code_update, host": lambda: json_edit_as(host_token=host_token),
        "Yjs update, host": lambda: yjs_edit_as(host_token=host_token),
    }
    check(entry, await probes[entry](), EDITING_LOCKED[entry])


# 6. Host-only reads and writes (REST only: neither socket offers them)

HOST_ONLY_ACTIONS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "notes GET": ("GET", "/notes", None),
    "notes PUT": ("PUT", "/notes", {"notes": "strong on recursion"}),
    "timeline GET": ("GET", "/timeline", None),
    "notebook GET": ("GET", "/notebook.ipynb", None),
    "executions GET": ("GET", "/executions", None),
    "settings PATCH": ("PATCH", "", {"editing_locked": True}),
    "participant DELETE": ("DELETE", "/participants/{target}", None),
    "session DELETE": ("DELETE", "", None),
}
CREDENTIALS = {
    "no token": refused("not_authenticated", status=401),
    "a participant's token": refused("forbidden", status=403),
    "another session's host token": refused("forbidden", status=403),
    "the host token": allowed(status=200),
}
HOST_ONLY = {
    f"{action}, {credential}": expected
    for action, (credential, expected) in itertools.product(HOST_ONLY_ACTIONS, CREDENTIALS.items())
}


@pytest.fixture(scope="module")
async def another_host_token(server: RunningServer) -> str:
    return str((await server.api.create_session())["host_token"])


@pytest.mark.parametrize("entry", HOST_ONLY)
async def test_host_only(entry: str, server: RunningServer, another_host_token: str) -> None:
    """What is the host's alone answers 401 without a token, 403 to any token but the host's
    (a candidate's, another session's host's), and works with it."""
    api = server.api
    action, credential = entry.split(", ", 1)
    session = await api.create_session()
    sid = session["session_id"]
    candidate, target = await register(api, sid, "Alan"), await register(api, sid, "Ada")
    token = {
        "no token": None,
        "a participant's token": candidate["participant_token"],
        "another session's host token": another_host_token,
        "the host token": session["host_token"],
    }[credential]
    method, path, body = HOST_ONLY_ACTIONS[action]
    path = f"/api/v1/sessions/{sid}" + path.format(target=target["client_id"])
    check(entry, rest(await api.request(method, path, body, token=token)), HOST_ONLY[entry])


# 7. The participant limit


@dataclass
class Full:
    """A session of two participants at most, with two in: one over each socket."""

    session_id: str
    json_member: str
    yjs_member: str


@pytest.fixture
async def full_session(server: RunningServer) -> AsyncIterator[Full]:
    """A new one for each cell (as for rules 8 and 9): a newcomer let in wrongly must not
    decide what the next cell finds."""
    async with AsyncExitStack() as stack:
        sid = (await server.api.create_session(max_participants=2))["session_id"]
        joined, _, _ = await json_join(server, stack, sid, "in-json")
        assert joined == allowed()
        await yjs_client(server, stack, sid, client_id="in-yjs")
        yield Full(sid, "in-json", "in-yjs")


PARTICIPANT_LIMIT = {
    "JSON join, a newcomer": refused("session_full"),
    "Yjs connect, a newcomer": refused(close=4403),
    "JSON join, in over JSON already": allowed(),
    "JSON join, in over Yjs already": allowed(),
    "Yjs connect, in over JSON already": allowed(),
    "Yjs connect, in over Yjs already": allowed(),
}


@pytest.mark.parametrize("entry", PARTICIPANT_LIMIT)
async def test_participant_limit(
    entry: str, server: RunningServer, full_session: Full, stack: AsyncExitStack
) -> None:
    """A full session lets nobody new in by either socket, and lets whoever is in open another
    connection by either (a second tab; the Yjs and the JSON connection of one page).
    Registering over REST connects nobody, so it is not limited."""
    sid = full_session.session_id
    client_id = {
        "a newcomer": "newcomer",
        "in over JSON already": full_session.json_member,
        "in over Yjs already": full_session.yjs_member,
    }[entry.split(", ", 1)[1]]
    if entry.startswith("JSON"):
        answer = await joins(server, stack, sid, client_id)
    else:
        answer = await connects(server, stack, sid, client_id=client_id)
    check(entry, answer, PARTICIPANT_LIMIT[entry])


# 8. A participant the host removed


@dataclass
class Removal:
    session_id: str
    removed: dict[str, Any]  # registered, then removed by the host
    kept: dict[str, Any]  # registered, still a participant


@pytest.fixture
async def removal(server: RunningServer) -> Removal:
    api = server.api
    session = await api.create_session()
    sid = session["session_id"]
    removed, kept = await register(api, sid, "Xander"), await register(api, sid, "Yvonne")
    path = f"/api/v1/sessions/{sid}/participants/{removed['client_id']}"
    assert (await api.delete(path, token=session["host_token"])).status == 200
    return Removal(sid, removed, kept)


REMOVED = {
    "REST register, removed": refused("participant_removed", status=403),
    "JSON join, removed": refused("participant_removed"),
    "Yjs connect, removed": refused(close=4403),
    "REST register, still a participant": allowed(status=201),
    "JSON join, still a participant": allowed(),
    "Yjs connect, still a participant": allowed(),
}


@pytest.mark.parametrize("entry", REMOVED)
async def test_removed_participant(
    entry: str, server: RunningServer, removal: Removal, stack: AsyncExitStack
) -> None:
    """A participant the host removed comes back by no way, not even with the participant
    token it had; the others still can."""
    sid = removal.session_id
    who = removal.removed if entry.endswith(", removed") else removal.kept
    client_id, token = who["client_id"], who["participant_token"]
    if entry.startswith("REST"):
        answer = await rest_register(server.api, sid, client_id, token)
    elif entry.startswith("JSON"):
        answer = await joins(server, stack, sid, client_id, participant_token=token)
    else:
        answer = await connects(server, stack, sid, client_id=client_id, participant_token=token)
    check(entry, answer, REMOVED[entry])


# 9. The host's client_id without the host token


@pytest.fixture
async def hosted(server: RunningServer, another_host_token: str) -> tuple[Session, str, str]:
    """A session, its host's client_id, and a wrong host token (another session's). A new
    session for each cell: one let in wrongly as the host's client_id would change who that
    is for the next (a candidate with a token), and hide its failure behind another refusal."""
    session = await server.api.create_session()
    host_id = next(p["client_id"] for p in session["participants"] if p["role"] == "host")
    return session, host_id, another_host_token


HOSTS_CLIENT_ID = {
    "REST register, no token": refused("forbidden", status=403),
    "REST register, a wrong host token": refused("forbidden", status=403),
    "REST register, the host token": allowed(status=201),
    "JSON join, no token": refused("forbidden"),
    "JSON join, a wrong host token": refused("forbidden"),
    "JSON join, the host token": allowed(),
    "Yjs connect, no token": refused(close=4403),
    "Yjs connect, a wrong host token": refused(close=4403),
    "Yjs connect, the host token": allowed(),
}


@pytest.mark.parametrize("entry", HOSTS_CLIENT_ID)
async def test_hosts_client_id(
    entry: str, server: RunningServer, hosted: tuple[Session, str, str], stack: AsyncExitStack
) -> None:
    """Nobody becomes the host by naming the host's client_id: only with the host token."""
    session, host_id, wrong = hosted
    sid = session["session_id"]
    token = {
        "no token": None,
        "a wrong host token": wrong,
        "the host token": session["host_token"],
    }[entry.split(", ", 1)[1]]
    tokens = {"host_token": token} if token else {}
    if entry.startswith("REST"):
        answer = await rest_register(server.api, sid, host_id, token)
    elif entry.startswith("JSON"):
        answer = await joins(server, stack, sid, host_id, **tokens)
    else:
        answer = await connects(server, stack, sid, client_id=host_id, **tokens)
    check(entry, answer, HOSTS_CLIENT_ID[entry])


# 10. An ended session


@dataclass
class Ended:
    """A session the host ended, with the connections that were open then."""

    session_id: str
    json_open: JsonClient
    yjs_open: YjsClient


@pytest.fixture(scope="module")
async def ended(server: RunningServer) -> AsyncIterator[Ended]:
    async with AsyncExitStack() as stack:
        session = await server.api.create_session()
        sid = session["session_id"]
        joined, json_open, _ = await json_join(server, stack, sid, "open-json")
        assert joined == allowed()
        yjs_open = await yjs_client(server, stack, sid, client_id="open-yjs")
        assert (
            await server.api.delete(f"/api/v1/sessions/{sid}", token=session["host_token"])
        ).status == 200
        yield Ended(sid, json_open, yjs_open)


SESSION_ENDED = {
    "REST execute": refused("session_ended", status=409),
    "REST register": refused("session_ended", status=409),
    "JSON connect": refused(close=4410),
    "Yjs connect": refused(close=4410),
    "JSON connection open when it ended": refused("session_ended", close=4410),
    "Yjs connection open when it ended": refused(close=4410),
}


@pytest.mark.parametrize("entry", SESSION_ENDED)
async def test_session_ended(
    entry: str, server: RunningServer, ended: Ended, stack: AsyncExitStack
) -> None:
    """An ended session runs nothing and lets nobody in by any way, and the connections open
    when it ended are closed."""
    sid = ended.session_id

    async def json_open() -> Answer:
        # What the connection was sent, up to its close.
        return (await _reply(ended.json_open, _never))[0]

    async def yjs_open() -> Answer:
        client = ended.yjs_open
        await eventually(lambda: client._reader.done(), "the Yjs connection to close")
        return refused(close=client.conn.close_code)

    probes: dict[str, Probe] = {
        "REST execute": lambda: rest_execute(server.api, sid, "1"),
        "REST register": lambda: rest_register(server.api, sid),
        "JSON connect": lambda: joins(server, stack, sid, "late-json"),
        "Yjs connect": lambda: connects(server, stack, sid, client_id="late-yjs"),
        "JSON connection open when it ended": json_open,
        "Yjs connection open when it ended": yjs_open,
    }
    check(entry, await probes[entry](), SESSION_ENDED[entry])


# 11. Message size

MESSAGE_SIZE = {
    "REST body of the largest size": allowed(status=200),
    "REST body one byte over": refused("payload_too_large", status=413),
    "JSON message of the largest size": allowed(),
    "JSON message one byte over": refused(close=1009),
    "Yjs message of the largest size": allowed(),
    "Yjs message one byte over": refused(close=1009),
}


@pytest.mark.parametrize("entry", MESSAGE_SIZE)
async def test_message_size(entry: str, server: RunningServer, stack: AsyncExitStack) -> None:
    """max_request_size bounds a REST body and a message on either socket alike: a message of
    exactly that many bytes is taken, one byte more is refused."""
    api = server.api
    session = await api.create_session()
    sid = session["session_id"]
    size = MAX_MESSAGE + (1 if entry.endswith("one byte over") else 0)

    async def rest_body() -> Answer:
        body = _padded(lambda pad: json.dumps({"notes": pad}), size)
        response = await api.put(
            f"/api/v1/sessions/{sid}/notes",
            body=body,
            token=session["host_token"],
            headers={"Content-Type": "application/json"},
        )
        return rest(response)

    async def json_message() -> Answer:
        joined, client, state = await json_join(server, stack, sid, "sender")
        assert joined == allowed()
        raw = _padded(
            lambda pad: json.dumps(
                {"type": "code_update", "data": {"code": pad, "base_version": state["version"]}}
            ),
            size,
        )
        return await json_raw(client, raw, ACCEPTED_BY["code_update"])

    async def yjs_message() -> Answer:
        sender = await yjs_client(server, stack, sid, client_id="sender")
        watcher = await yjs_client(server, stack, sid)
        presence = Awareness(sender.doc)

        def message(pad: str) -> bytes:
            presence.set_local_state({"pad": pad})
            return create_awareness_message(presence.encode_awareness_update([presence.client_id]))

        await sender.conn.write_message(_padded(message, size), binary=True)
        # Passed on to the others if taken; the connection closes if not.
        await eventually(
            lambda: presence.client_id in watcher.others.states or sender._reader.done(),
            "the message to be passed on or the connection to close",
        )
        if sender._reader.done():
            return refused(close=sender.conn.close_code)
        return allowed()

    probes: dict[str, Probe] = {
        "REST": rest_body,
        "JSON": json_message,
        "Yjs": yjs_message,
    }
    check(entry, await probes[entry.split(" ", 1)[0]](), MESSAGE_SIZE[entry])


def _padded(make: Callable[[str], Message], size: int) -> Message:
    """``make(pad)`` with the padding that makes it ``size`` bytes long."""
    pad = 0
    for _ in range(5):
        made = make("x" * pad)
        length = len(made.encode() if isinstance(made, str) else made)
        if length == size:
            return made
        pad += size - length
    raise AssertionError(f"no padding makes the message {size} bytes long")
