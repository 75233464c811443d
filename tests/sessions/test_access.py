"""The access rules as a table: role x action x the host's rules -> allowed, and the limits on
running code. Pure logic: no server, no kernel."""

from __future__ import annotations

import itertools

import pytest

from kernelpad.errors import (
    EditingLocked,
    ExecutionDisabled,
    Forbidden,
    InvalidValue,
    NotAuthenticated,
    RateLimited,
)
from kernelpad.sessions.access import Access, Action, Role, Rules, RunLimits, allowed
from kernelpad.sessions.models import Session
from kernelpad.sessions.tokens import hash_token

LOCKED = Rules(editing_locked=True, candidate_execution=True)
NO_RUNS = Rules(editing_locked=False, candidate_execution=False)
OPEN = Rules()
CLOSED = Rules(editing_locked=True, candidate_execution=False)

RUNNING = (
    Action.RUN,
    Action.INTERRUPT,
    Action.RESTART_KERNEL,
    Action.ANSWER_INPUT,
    Action.ASK_KERNEL,
)

# Every cell of the table, written out: (role, action, rules) -> allowed.
TABLE = {
    **{(Role.HOST, a, r): True for a in Action for r in (OPEN, LOCKED, NO_RUNS, CLOSED)},
    (Role.CANDIDATE, Action.EDIT, OPEN): True,
    (Role.CANDIDATE, Action.EDIT, LOCKED): False,
    (Role.CANDIDATE, Action.EDIT, NO_RUNS): True,
    (Role.CANDIDATE, Action.EDIT, CLOSED): False,
    **{(Role.CANDIDATE, a, OPEN): True for a in RUNNING},
    **{(Role.CANDIDATE, a, LOCKED): True for a in RUNNING},
    **{(Role.CANDIDATE, a, NO_RUNS): False for a in RUNNING},
    **{(Role.CANDIDATE, a, CLOSED): False for a in RUNNING},
}


def test_the_table_is_complete() -> None:
    cells = set(itertools.product(Role, Action, (OPEN, LOCKED, NO_RUNS, CLOSED)))
    assert set(TABLE) == cells


@pytest.mark.parametrize(("role", "action", "rules"), list(TABLE), ids=str)
def test_allowed(role: Role, action: Action, rules: Rules) -> None:
    assert allowed(role, action, rules) is TABLE[role, action, rules]


@pytest.mark.parametrize(("role", "action", "rules"), list(TABLE), ids=str)
def test_check_raises_what_the_table_refuses(role: Role, action: Action, rules: Rules) -> None:
    access = Access(RunLimits())
    access.set_rules("s1", rules)
    if TABLE[role, action, rules]:
        access.check("s1", role, action)
        assert access.allows("s1", role, action)
        return
    expected = EditingLocked if action is Action.EDIT else ExecutionDisabled
    with pytest.raises(expected):
        access.check("s1", role, action)
    assert not access.allows("s1", role, action)


def session(editing_locked: bool = False, candidate_execution: bool = True) -> Session:
    return Session(
        id="s1",
        name="Interview",
        host_name="Hana",
        language="python",
        code="",
        max_participants=4,
        host_token_hash=hash_token("host-secret"),
        created_at=0.0,
        last_activity=0.0,
        editing_locked=editing_locked,
        candidate_execution=candidate_execution,
    )


def test_rules_have_one_copy_and_a_stale_read_does_not_win() -> None:
    access = Access(RunLimits())
    assert access.rules("s1") == OPEN and not access.known("s1")
    # The host locks editing while a load read the old row: the newer rules stay.
    access.set_rules("s1", LOCKED)
    assert access.remember(session()) == LOCKED
    access.forget("s1")
    assert access.remember(session(candidate_execution=False)) == NO_RUNS
    assert access.rules("s1") == NO_RUNS


def test_run_limits() -> None:
    access = Access(RunLimits(enabled=True, max_code_size=10, runs_per_minute=2))
    access.check_run("s1", Role.CANDIDATE, "x" * 10)
    with pytest.raises(InvalidValue, match="11 characters long; the limit is 10"):
        access.check_run("s1", Role.HOST, "x" * 11)
    access.count_run("s1", "ann")
    access.count_run("s1", "ann")
    with pytest.raises(RateLimited):
        access.count_run("s1", "ann")
    access.count_run("s1", "bob")  # per participant: Ann's runs are not Bob's
    access.count_run("s2", "ann")  # and per session
    access.forget("s1")
    access.count_run("s1", "ann")
    access.count_run("s1", "ann")


def test_a_server_that_runs_no_code_refuses_even_the_host() -> None:
    access = Access(RunLimits(enabled=False))
    with pytest.raises(ExecutionDisabled, match="ENABLE_SERVER_EXECUTION"):
        access.check_run("s1", Role.HOST, "1")
    for action in RUNNING:  # nor anything around a run: there is none
        assert not access.allows("s1", Role.HOST, action)
        with pytest.raises(ExecutionDisabled, match="ENABLE_SERVER_EXECUTION"):
            access.check("s1", Role.HOST, action)
    access.check("s1", Role.CANDIDATE, Action.EDIT)  # editing is not running


def test_the_candidate_rule_comes_before_the_code_size() -> None:
    access = Access(RunLimits(max_code_size=1))
    access.set_rules("s1", NO_RUNS)
    with pytest.raises(ExecutionDisabled):
        access.check_run("s1", Role.CANDIDATE, "too long")


def test_tokens() -> None:
    access = Access(RunLimits())
    s = session()
    assert access.role_of(s, "host-secret") is Role.HOST
    assert access.role_of(s, "wrong") is Role.CANDIDATE
    assert access.role_of(s, None) is Role.CANDIDATE
    access.authorize_host(s, "host-secret")
    with pytest.raises(NotAuthenticated):
        access.authorize_host(s, None)
    with pytest.raises(Forbidden):
        access.authorize_host(s, "wrong")
