"""Refusals in the operator's log, alike whichever way a request came in: the REST API, the
JSON socket, the Yjs socket.

A refusal of permission or of a limit is a WARNING: a wrong token, a removed participant, a rule
of the host's, a full session, a body or message too large, a client too fast, a ticket that is
not good. One alone may be a person's slip; many are someone trying, and they show at the level
an operator watches. Each names the session and who asked (the participant's ``client_id`` and
role, where known; the address it came from) in its text and, through
:func:`kernelpad.logs.about`, as fields of the JSON log. The mistakes an honest client makes (a
field of the wrong type, a session that does not exist) stay at INFO: they are noise there.

Messages a client reads are the callers' to write; these lines are the operator's, so they may
name session ids and settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kernelpad.logs import about

#: Statuses that refuse permission or a limit (the sockets say theirs in the same terms).
WARNING_STATUSES = frozenset({401, 403, 409, 413, 415, 429})
#: Error codes that do, under a status that honest mistakes share too: ``invalid_value`` (422)
#: is a setting's limit; ``invalid_yjs`` a frame no Yjs client sends, which closes the socket.
WARNING_CODES = frozenset({"invalid_value", "invalid_yjs"})


def level_of(status: int, code: str) -> int:
    """WARNING for a refusal of permission or of a limit (and the server's own trouble, 5xx);
    INFO for the rest."""
    if status >= 500 or status in WARNING_STATUSES or code in WARNING_CODES:
        return logging.WARNING
    return logging.INFO


@dataclass(frozen=True)
class Who:
    """Who was refused, as far as the entry point knows: the session its request was about,
    the participant (a ``client_id`` it named or joined as, and its role), its address."""

    session_id: str | None = None
    client_id: str | None = None
    role: str | None = None
    address: str | None = None
    #: REST: whether the request carried a bearer token (a guessed one, perhaps).
    token: bool | None = None

    def __str__(self) -> str:
        if self.client_id:
            person = f"{self.client_id} ({self.role})" if self.role else self.client_id
        else:
            person = f"a {self.role}" if self.role else "a client"
        if self.token is not None:
            person += " with a token" if self.token else " without a token"
        return f"{person} from {self.address or 'an unknown address'}"


def log_refusal(
    logger: logging.Logger, who: Who, what: str, status: int, code: str, message: str
) -> None:
    """Log that ``who`` was refused ``what`` (``status``: HTTP's, or its equivalent for a
    socket; ``code``: the error's), at the level :func:`level_of` says."""
    logger.log(
        level_of(status, code),
        "%s%s was refused %s (%d %s): %s",
        f"session {who.session_id}: " if who.session_id else "",
        who,
        what,
        status,
        code,
        message,
        extra=about(who.session_id, client_id=who.client_id, role=who.role),
    )
