"""Tickets for the Yjs socket's URL (kernelpad.sessions.tickets): single use, short-lived, bound to
one session and one participant, and given only to whoever holds that participant's token.
Pure logic: a fake clock, no server."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from kernelpad.errors import (
    Forbidden,
    InvalidTicket,
    NotAuthenticated,
    ParticipantRemoved,
    SessionEnded,
)
from kernelpad.sessions.models import ENDED, Participant, Session
from kernelpad.sessions.tickets import Grant, TicketStore, grant_for
from kernelpad.sessions.tokens import hash_token

HOST_TOKEN = "the-host-token"
ALAN_TOKEN = "alan-s-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> TicketStore:
    return TicketStore(ttl=30.0, per_holder=3, clock=clock)


ALAN = Grant("s-1", "c-alan", participant_token=ALAN_TOKEN)


def test_a_ticket_is_good_once(store: TicketStore) -> None:
    ticket = store.issue(ALAN)
    assert store.redeem(ticket, "s-1") == ALAN
    with pytest.raises(InvalidTicket, match="used"):
        store.redeem(ticket, "s-1")


def test_tickets_are_random_and_long(store: TicketStore) -> None:
    tickets = {store.issue(ALAN) for _ in range(3)}
    assert len(tickets) == 3
    assert all(len(ticket) >= 40 for ticket in tickets)


def test_a_ticket_expires(store: TicketStore, clock: Clock) -> None:
    early, late = store.issue(ALAN), store.issue(ALAN)
    clock.now += 29.9
    assert store.redeem(early, "s-1") == ALAN
    clock.now += 0.1
    with pytest.raises(InvalidTicket, match="expired"):
        store.redeem(late, "s-1")


def test_a_ticket_is_for_its_session_only_and_is_spent_by_a_wrong_try(
    store: TicketStore,
) -> None:
    ticket = store.issue(ALAN)
    with pytest.raises(InvalidTicket, match="another interview"):
        store.redeem(ticket, "s-2")
    with pytest.raises(InvalidTicket):
        store.redeem(ticket, "s-1")


def test_a_holder_keeps_only_its_newest_tickets(store: TicketStore) -> None:
    roomy = TicketStore(per_holder=8)
    kept = [roomy.issue(ALAN) for _ in range(8)]
    assert [roomy.redeem(ticket, "s-1") for ticket in kept] == [ALAN] * 8
    first, *rest = [store.issue(ALAN) for _ in range(4)]
    other = store.issue(dataclasses.replace(ALAN, client_id="c-bo"))
    with pytest.raises(InvalidTicket):
        store.redeem(first, "s-1")
    for ticket in rest:
        assert store.redeem(ticket, "s-1") == ALAN
    assert store.redeem(other, "s-1").client_id == "c-bo"


def test_no_more_than_the_limit_are_held(clock: Clock) -> None:
    store = TicketStore(limit=5, clock=clock)
    tickets = [store.issue(dataclasses.replace(ALAN, client_id=f"c-{n}")) for n in range(7)]
    assert len(store) == 5
    with pytest.raises(InvalidTicket):
        store.redeem(tickets[1], "s-1")
    assert store.redeem(tickets[2], "s-1").client_id == "c-2"


def test_expired_tickets_are_let_go(store: TicketStore, clock: Clock) -> None:
    for n in range(3):
        store.issue(dataclasses.replace(ALAN, client_id=f"c-{n}"))
    assert len(store) == 3
    clock.now += 31
    store.issue(ALAN)
    assert len(store) == 1


# Who gets one


def session(**changes: object) -> Session:
    alan = Participant("c-alan", "Alan", "candidate", 1.0, token_hash=hash_token(ALAN_TOKEN))
    bo = Participant("c-bo", "Bo", "candidate", 1.0, token_hash=hash_token("bo-s-token"))
    made = Session(
        id="s-1",
        name="Loop",
        host_name="Grace",
        language="python",
        code="",
        max_participants=5,
        host_token_hash=hash_token(HOST_TOKEN),
        created_at=1.0,
        last_activity=1.0,
        participants=[alan, bo],
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def test_a_participant_gets_a_ticket_for_itself_only() -> None:
    assert grant_for(session(), "c-alan", ALAN_TOKEN) == ALAN
    with pytest.raises(Forbidden):
        grant_for(session(), "c-bo", ALAN_TOKEN)
    with pytest.raises(Forbidden):
        grant_for(session(), "c-nobody", ALAN_TOKEN)


def test_the_host_gets_a_ticket_as_anyone_it_may_join_as() -> None:
    for client_id in ("c-grace", "c-alan"):
        grant = grant_for(session(), client_id, HOST_TOKEN)
        assert grant == Grant("s-1", client_id, host_token=HOST_TOKEN)


def test_no_token_or_a_wrong_one_gets_no_ticket() -> None:
    with pytest.raises(NotAuthenticated):
        grant_for(session(), "c-alan", None)
    with pytest.raises(Forbidden):
        grant_for(session(), "c-alan", "a-guess")


def test_a_removed_participant_or_an_ended_interview_gets_no_ticket() -> None:
    removed = session()
    removed.participants[0].removed_at = 2.0
    with pytest.raises(ParticipantRemoved):
        grant_for(removed, "c-alan", ALAN_TOKEN)
    with pytest.raises(ParticipantRemoved):
        grant_for(removed, "c-alan", HOST_TOKEN)
    with pytest.raises(SessionEnded):
        grant_for(session(status=ENDED), "c-alan", ALAN_TOKEN)


def test_messages_name_no_session() -> None:
    """What a candidate reads names no session id (the operator's log does)."""
    store = TicketStore()
    ticket = store.issue(ALAN)
    problems: list[Exception] = []
    attempts: tuple[Callable[[], object], ...] = (
        lambda: store.redeem("nothing", "s-1"),
        lambda: store.redeem(ticket, "s-2"),
        lambda: grant_for(session(), "c-bo", ALAN_TOKEN),
        lambda: grant_for(session(), "c-alan", None),
        lambda: grant_for(session(status=ENDED), "c-alan", ALAN_TOKEN),
    )
    for attempt in attempts:
        with pytest.raises(Exception) as raised:
            attempt()
        problems.append(raised.value)
    assert all("s-1" not in str(p) and "s-2" not in str(p) for p in problems), problems
