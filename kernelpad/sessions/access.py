"""Who may do what in a session, and within which limits: every rule, in one place.

Every entry point asks here, whatever it speaks: the REST handlers, the JSON socket and the Yjs
socket alike (through the session's parts: runs, participants, the room). A rule written only in
one handler is a rule the others miss; that is how code over ``MAX_CODE_SIZE`` once ran when it
came over the JSON socket. Nothing here knows of HTTP or sockets: an answer is an exception of
:mod:`kernelpad.errors`, which each entry point says in its own way.

The host's rules of a session (:class:`Rules`) have exactly one copy in memory, here; the
database keeps them across restarts, the room asks for them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kernelpad.errors import (
    DocumentTooLarge,
    EditingLocked,
    ExecutionDisabled,
    Forbidden,
    InvalidValue,
    NotAuthenticated,
)
from kernelpad.sessions.models import ACTIVE, Session
from kernelpad.sessions.ratelimit import RateLimiter
from kernelpad.sessions.tokens import token_matches


class Role(enum.StrEnum):
    HOST = "host"
    CANDIDATE = "candidate"


class Action(enum.Enum):
    """What a participant may ask for. The host may do everything; a candidate, what the host's
    rules allow."""

    EDIT = "edit the notebook"
    RUN = "run code"
    INTERRUPT = "interrupt a run"
    RESTART_KERNEL = "restart a kernel"
    ANSWER_INPUT = "answer a run's input request"
    ASK_KERNEL = "ask a kernel for completions or documentation"


# What the host's rule candidate_execution governs: running, and everything around a run
# (a kernel asked for completions evaluates some of the code it is given).
RUN_ACTIONS = frozenset(
    {Action.RUN, Action.INTERRUPT, Action.RESTART_KERNEL, Action.ANSWER_INPUT, Action.ASK_KERNEL}
)


@dataclass(frozen=True)
class Rules:
    """What the host allows in a session (changed with PATCH /api/v1/sessions/{id})."""

    editing_locked: bool = False
    candidate_execution: bool = True
    #: The host's limits for the interview, within the server's (None: the server's).
    time_limit: float | None = None
    runs_per_minute: int | None = None
    #: After the end, candidates may still open the final notebook, read-only.
    review_after_end: bool = True
    #: Candidates see the score of each grading (nothing of the tests).
    share_score: bool = False

    @classmethod
    def of(cls, session: Session) -> Rules:
        return cls(
            session.editing_locked,
            session.candidate_execution,
            session.time_limit,
            session.runs_per_minute,
            session.review_after_end,
            session.share_score,
        )


def allowed(role: str, action: Action, rules: Rules) -> bool:
    """The table: whether ``role`` may take ``action`` under ``rules``."""
    if role == Role.HOST:
        return True
    if action is Action.EDIT:
        return not rules.editing_locked
    return rules.candidate_execution


@dataclass(frozen=True)
class RunLimits:
    """The server's limits on running code, the same for every session."""

    enabled: bool = True
    max_code_size: int = 100_000
    runs_per_minute: int = 0


@dataclass(frozen=True)
class DocumentLimits:
    """How large a notebook may grow, in characters: a cell's source, and the whole notebook
    (its sources and metadata; outputs are bounded by the run limits)."""

    max_cell_size: int = 200_000
    max_notebook_size: int = 2_000_000


def check_document(limits: DocumentLimits, total: int, largest_cell: int) -> None:
    """Raise unless a notebook of ``total`` characters whose largest cell holds
    ``largest_cell`` is within ``limits``."""
    if largest_cell > limits.max_cell_size:
        raise DocumentTooLarge(
            f"A cell may hold at most {limits.max_cell_size} characters; that change would make"
            f" one {largest_cell} long. It was not kept."
        )
    if total > limits.max_notebook_size:
        raise DocumentTooLarge(
            f"The notebook may hold at most {limits.max_notebook_size} characters; that change"
            f" would make it {total} long. It was not kept."
        )


class Access:
    """The rules of every session seen since start, and the checks that apply them."""

    def __init__(
        self,
        limits: RunLimits,
        document: DocumentLimits | None = None,
        time_cap: float = float("inf"),
    ) -> None:
        self.limits = limits
        self.document = document or DocumentLimits()
        self.time_cap = time_cap  # the longest a run may take on this server, in seconds
        self.limiter = RateLimiter(limits.runs_per_minute)
        self._rules: dict[str, Rules] = {}

    # The host's rules

    def rules(self, session_id: str) -> Rules:
        """The session's rules as known here (the defaults for a session not seen yet)."""
        return self._rules.get(session_id) or Rules()

    def known(self, session_id: str) -> bool:
        return session_id in self._rules

    def remember(self, session: Session) -> Rules:
        """The rules of ``session`` as read from storage, unless the host changed them here
        since (then those are newer than the row that was read)."""
        return self._rules.setdefault(session.id, Rules.of(session))

    def set_rules(self, session_id: str, rules: Rules) -> None:
        self._rules[session_id] = rules

    def forget(self, session_id: str) -> None:
        """The session ended: nothing of it is kept."""
        self._rules.pop(session_id, None)
        self.limiter.forget(session_id)

    # Checks

    def allows(self, session_id: str, role: str, action: Action) -> bool:
        """Whether ``role`` may take ``action`` in the session now."""
        if action in RUN_ACTIONS and not self.limits.enabled:
            return False
        return allowed(role, action, self.rules(session_id))

    def check(self, session_id: str, role: str, action: Action) -> None:
        """Raise unless ``role`` may take ``action`` in the session now."""
        if action in RUN_ACTIONS and not self.limits.enabled:
            raise ExecutionDisabled(
                "Running code is turned off on this server (ENABLE_SERVER_EXECUTION=false).",
                public="Running code is turned off on this server.",
            )
        rules = self.rules(session_id)
        if allowed(role, action, rules):
            return
        if action is Action.EDIT:
            raise EditingLocked(
                f"Session {session_id}: the host has locked editing; the change was not made.",
                public="The host has locked editing: your change was not made.",
            )
        raise ExecutionDisabled(
            f"Session {session_id}: the host has turned running code off for candidates.",
            public="The host has turned running code off for candidates.",
        )

    def check_run(self, session_id: str, role: str, code: str) -> None:
        """Raise unless ``role`` may run ``code`` in the session: the server runs code, the
        host lets this role run, and the code is within the size limit. (The rate limit is
        :meth:`count_run`, once the run is sure to be queued.)"""
        self.check(session_id, role, Action.RUN)
        limit = self.limits.max_code_size
        if len(code) > limit:
            raise InvalidValue(f"The code is {len(code)} characters long; the limit is {limit}.")

    def count_run(self, session_id: str, who: str) -> None:
        """Count a run of ``who`` (a participant) against the rate limit (the host's for the
        interview, or the server's); raise if it is over."""
        self.limiter.hit(f"{session_id} {who}", self.rules(session_id).runs_per_minute)

    def check_limits(self, time_limit: float | None, runs_per_minute: int | None) -> None:
        """Raise unless the host's limits for an interview are within the server's
        (``time_cap`` seconds a run, and its rate limit)."""
        if time_limit is not None and time_limit > self.time_cap:
            raise InvalidValue(
                f"A run may take at most {self.time_cap:g} s on this server: the time limit"
                f" cannot be {time_limit:g} s."
            )
        cap = self.limits.runs_per_minute
        if runs_per_minute is not None and cap and runs_per_minute > cap:
            raise InvalidValue(
                f"This server allows at most {cap} runs a minute per person: the limit cannot"
                f" be {runs_per_minute}."
            )

    def check_document(self, total: int, largest_cell: int) -> None:
        """Raise unless a notebook of ``total`` characters whose largest cell holds
        ``largest_cell`` is within the limits."""
        check_document(self.document, total, largest_cell)

    # Tokens

    @staticmethod
    def is_host(session: Session, token: str | None) -> bool:
        return bool(token) and token_matches(token or "", session.host_token_hash)

    @staticmethod
    def role_by_hash(host_token_hash: str, token: str | None) -> Role:
        """The role a request with ``token`` has in the session whose host token hashes to
        ``host_token_hash``: the host's token makes it the host."""
        host = bool(token) and token_matches(token or "", host_token_hash)
        return Role.HOST if host else Role.CANDIDATE

    def role_of(self, session: Session, token: str | None) -> Role:
        """The role a request with ``token`` has: the host's token makes it the host."""
        return self.role_by_hash(session.host_token_hash, token)

    @staticmethod
    def authorize_host(session: Session, token: str | None) -> None:
        """Raise unless ``token`` is the host token of ``session``."""
        if not token:
            raise NotAuthenticated(
                f"Session {session.id}: this needs the host token"
                " (header 'Authorization: Bearer <host_token>').",
                public="Only the interview's host may do this (send the host token in the"
                " header 'Authorization: Bearer <host_token>').",
            )
        if not token_matches(token, session.host_token_hash):
            raise Forbidden(
                f"Session {session.id}: that is not the session's host token.",
                public="That is not this interview's host token.",
            )

    @classmethod
    def authorize_reader(cls, session: Session, token: str | None) -> None:
        """Raise unless ``token`` may read the session's notebook: the host's always; after
        the end, a participant's who was not removed, if the host lets candidates read the
        final notebook (during the interview they read it live)."""
        reader = (
            token
            and session.status != ACTIVE
            and session.review_after_end
            and any(
                p.token_hash and p.removed_at is None and token_matches(token, p.token_hash)
                for p in session.participants
            )
        )
        if not reader:
            cls.authorize_host(session, token)
