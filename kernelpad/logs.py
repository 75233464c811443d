"""kernelpad's log lines: text for people, or one JSON object per line for log collectors.

Events about a session carry ``session_id`` (and ``language``, when a kernel is involved; the
participant's ``client_id`` and ``role``, when one is) as fields, through :func:`about`, so
that a collector can filter on them without parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Fields of a record that :func:`about` sets, in the order JSON lines show them.
EVENT_FIELDS = ("session_id", "language", "client_id", "role")


def about(
    session_id: str | None,
    language: str | None = None,
    *,
    client_id: str | None = None,
    role: str | None = None,
) -> dict[str, Any]:
    """``extra=`` for a log call about a session (and one of its kernels, or a participant)."""
    return {"session_id": session_id, "language": language, "client_id": client_id, "role": role}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the event's fields, and the
    traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EVENT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, log_format: str) -> None:
    """Send every log record to stderr, as text or as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
