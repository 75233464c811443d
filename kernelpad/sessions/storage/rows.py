"""How kernelpad's tables map to its models: the columns read, and rows turned into models."""

from __future__ import annotations

import json

from kernelpad.sessions.models import Execution, Session
from kernelpad.sessions.storage.database import Row

SESSION_COLUMNS = (
    "id, name, host_name, language, code, max_participants, host_token_hash, created_at,"
    " last_activity, status, ended_at, end_reason, notes, editing_locked, candidate_execution,"
    " time_limit, runs_per_minute, review_after_end, statement, suggested_minutes, share_score"
)
PARTICIPANT_COLUMNS = "client_id, display_name, role, joined_at, left_at, token_hash, removed_at"
# What the host may change of a session after it is made.
HOST_SETTINGS = (
    "notes",
    "editing_locked",
    "candidate_execution",
    "time_limit",
    "runs_per_minute",
    "review_after_end",
    "statement",
    "suggested_minutes",
    "share_score",
)
EXECUTION_COLUMNS = (
    "id, session_id, language, code, status, stdout, stderr, outputs, error, execution_count,"
    " time_limit_ms, started_at, finished_at, duration_ms, queued_ms, timed_out, state_kept,"
    " kernel_restarted, new_kernel, output_truncated, notices, cell_id, author"
)
JSON_FIELDS = ("outputs", "error", "notices")
BOOL_FIELDS = ("timed_out", "state_kept", "kernel_restarted", "new_kernel", "output_truncated")


def session_of(row: Row) -> Session:
    session = Session(**row)
    session.editing_locked = bool(session.editing_locked)
    session.candidate_execution = bool(session.candidate_execution)
    session.review_after_end = bool(session.review_after_end)
    session.share_score = bool(session.share_score)
    return session


def execution_of(row: Row) -> Execution:
    values = dict(row)
    for name in JSON_FIELDS:
        values[name] = json.loads(values[name]) if values[name] is not None else None
    for name in BOOL_FIELDS:
        values[name] = bool(values[name])
    return Execution(**values)
