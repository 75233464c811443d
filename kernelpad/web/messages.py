"""The messages clients send on the JSON socket (the original protocol, SEED_API.md), as
pydantic models: what the socket reads is validated here before any session code sees it.
What the server sends back is :mod:`kernelpad.sessions.events`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kernelpad.web.schemas import CLIENT_ID_PATTERN, LANGUAGE_PATTERN, PersonName


class SocketMessage(BaseModel):
    """Every message: ``{"type": ..., "data": {...}, "timestamp": ...}``."""

    model_config = ConfigDict(extra="ignore")
    type: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None


class JoinSessionData(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    session_id: str | None = None
    client_id: str = Field(pattern=CLIENT_ID_PATTERN)
    display_name: PersonName
    host_token: str | None = Field(None, max_length=200)
    participant_token: str | None = Field(None, max_length=200)
    code_updates: bool = Field(
        True,
        description="Whether to be sent code_update when the code changes: a client that"
        " follows the document over /ws/yjs (the browser pad) says false, and is spared the"
        " whole text at every keystroke.",
    )


class CodeUpdateData(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    code: str
    language: str | None = Field(None, pattern=LANGUAGE_PATTERN)
    base_version: int | None = Field(
        None,
        ge=0,
        description="The version (from session_state or code_update) the text was edited from.",
    )


class ExecuteData(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    cell_id: str | None = Field(None, max_length=64)
    code: str | None = None
    language: str | None = Field(None, pattern=LANGUAGE_PATTERN)
    time_limit: int | None = Field(None, gt=0)


class CellData(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    cell_id: str = Field(max_length=64)


class MoveCellData(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    cell_id: str = Field(max_length=64)
    index: int = Field(ge=0, description="Where the cell goes (past the end: last).")


class IntrospectData(BaseModel):
    """``complete`` and ``inspect``: the code (the sender's text of the cell, which may be
    ahead of the server's), the cursor in it, in code points (as Jupyter counts), and the
    cell's language."""

    model_config = ConfigDict(extra="ignore", strict=True)
    request_id: str | None = Field(None, max_length=64, description="Sent back with the answer.")
    code: str
    cursor_pos: int = Field(ge=0)
    language: str | None = Field(None, pattern=LANGUAGE_PATTERN)
    detail_level: int = Field(0, ge=0, le=1, description="inspect: 1 for more (source).")


class KernelData(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    language: str | None = Field(None, pattern=LANGUAGE_PATTERN)
    execution_id: str | None = Field(
        None, max_length=64, description="interrupt: the run to stop (from execution_started)."
    )


class InputReplyData(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    value: str = Field(max_length=100_000)
    execution_id: str | None = Field(
        None,
        max_length=64,
        description="The run asking (from its input_request); default: the oldest.",
    )
