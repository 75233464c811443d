"""Errors a user of kernelpad can cause or meet, each with a stable machine-readable code.

They are raised by the kernels and sessions layers and turned into HTTP (or WebSocket) errors by
``kernelpad.web``, which owns the mapping to status codes. Messages are written for the person
reading them: they name the session, the language or the limit involved.
"""

from __future__ import annotations


class KernelpadError(Exception):
    """Base class: ``code`` identifies the kind of error, the message explains it."""

    code = "error"
    #: What clients are told instead of the message, where the message is for the operator's
    #: log only (it names the database, say).
    public_message: str | None = None

    def __init__(self, message: str, public: str | None = None) -> None:
        """``message`` is for the operator's log (it may name the session, a setting);
        ``public``, if given, is what the person reading the client is told instead, in
        their terms."""
        super().__init__(message)
        self.message = message
        if public is not None:
            self.public_message = public

    @property
    def public(self) -> str:
        """The message for the HTTP or WebSocket client."""
        return self.public_message or self.message


class UnknownLanguage(KernelpadError):
    code = "unknown_language"


class LanguageUnavailable(KernelpadError):
    """The language is installed here but cannot run (its program is missing, say)."""

    code = "language_unavailable"


class SessionNotFound(KernelpadError):
    code = "session_not_found"


class ParticipantNotFound(KernelpadError):
    code = "participant_not_found"


class QuestionNotFound(KernelpadError):
    code = "question_not_found"


class EditingLocked(KernelpadError):
    """The host has locked editing: only the host may change the notebook."""

    code = "editing_locked"


class CellLocked(KernelpadError):
    """A question's locked cell (its tests, a read-only cell): only the host may change it."""

    code = "cell_locked"


class SessionFull(KernelpadError):
    code = "session_full"


class SessionEnded(KernelpadError):
    code = "session_ended"
    public_message = "This interview has ended."


class NotAuthenticated(KernelpadError):
    """No host token was given where one is required."""

    code = "not_authenticated"


class InvalidTicket(NotAuthenticated):
    """A WebSocket ticket that is unknown, used, expired, or for another session."""

    code = "invalid_ticket"


class Forbidden(KernelpadError):
    """A token was given but does not grant this."""

    code = "forbidden"


class ParticipantRemoved(Forbidden):
    """The host removed this participant: it cannot join again."""

    code = "participant_removed"
    public_message = "The host removed you from this interview."


class ExecutionDisabled(KernelpadError):
    code = "execution_disabled"


class QueueFull(KernelpadError):
    code = "queue_full"


class RateLimited(KernelpadError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float, public: str | None = None) -> None:
        super().__init__(message, public)
        self.retry_after = retry_after


class SessionElsewhere(KernelpadError):
    """Another process drives the session (the proxy is moving it there or here): try again
    in a moment (see :mod:`kernelpad.sessions.leases`)."""

    code = "session_moving"
    public_message = "This interview is moving to another server. Trying again in a moment."
    retry_after = 1


class KernelStartFailed(KernelpadError):
    code = "kernel_start_failed"


class DocumentTooLarge(KernelpadError):
    """A change would take a cell or the notebook past the server's size limits; the change
    is not kept (see MAX_CELL_SIZE, MAX_NOTEBOOK_SIZE)."""

    code = "document_too_large"


class ChangeNotMerged(KernelpadError):
    """A Yjs change the server could not integrate whole: it builds on changes the server
    does not have, or adds to what the notebook does not have. It is not applied; its
    author's connection is closed, and their page must load the notebook again."""

    code = "change_not_merged"
    public_message = (
        "Your last change could not be merged with the notebook. Reload the page to go on."
    )


class InvalidValue(KernelpadError):
    """A well-formed request asks for something the server's settings do not allow."""

    code = "invalid_value"
