"""The JSON side of a room: clients of the original protocol, which send and receive the code as
a whole text (``code_update``), and every event of the session (runs, presence, rules).

A whole text is turned into a minimal change of the shared document, made from the version the
client wrote on: the one it names (``base_version``), or else the closest of the texts it was
last sent or sent itself. Versions are numbered from the time of the load, so that a number from
an earlier load of the document is not mistaken for one of this load.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kernelpad.sessions.document import SessionDocument, changed_span
from kernelpad.sessions.events import CodeUpdate, Event

# Versions of the text remembered per JSON peer, to find what its next whole text is based on
# when it does not say (clients of the original protocol send no base_version).
SEEN_VERSIONS = 8
# Numbered versions of the text kept, for code_update's base_version: at most this many, and
# no more characters in all than this (each version is a whole text: a long cell edited
# keystroke by keystroke would otherwise hold 64 copies of itself).
KEPT_VERSIONS = 64
KEPT_CHARACTERS = 2_000_000
# How long the text may lag behind the document while no JSON peer is sent it (the browser pad
# follows the document over Yjs): it is read then at most this often, and at once when anyone
# asks for it. Reading it walks the notebook's cells (30 us here for a one-cell notebook, on an
# idle machine), and each new text is written to the sessions' ``code`` column, which is read
# only for sessions nobody has open: the room's last leave reads and writes it once more, and
# a load repairs a column that lagged. So the lag is seen only in the REST ``code`` of a
# session left open when the server died and not opened since (its document, every change
# included, is whole). Reading and writing every room's text once a second was about a
# twentieth of the server's CPU at 150 interviews typing (bench/README.md, "How the capacity
# got here"); every five seconds, a fifth of that.
UNFOLLOWED_WITHIN = 5.0


class JsonPeer(Protocol):
    """A JSON connection, as the room sees it."""

    @property
    def client_id(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def role(self) -> str: ...

    def send_event(self, event: Event) -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


@dataclass
class _PeerView:
    """What a JSON peer has of the text: the last texts it was sent or sent itself, and the
    version it was last told; ``numbered`` once it names versions (then every version reaches
    it, even one whose text it already has, so it always knows what to base on).

    A peer that follows the document over Yjs (``code_updates`` false: the browser pad) is
    sent no text, but its view is kept as if it had been, so that a ``code_update`` it does
    send is still read as the change from the text it saw."""

    texts: collections.deque[str]
    version: int
    numbered: bool = False
    code_updates: bool = True


class TextSync:
    """The JSON connections of one document, and the code's numbered versions."""

    def __init__(self, document: SessionDocument, on_code: Callable[[str], None]) -> None:
        self.document = document
        self.on_code = on_code  # told the code each time it changes (the room stores it)
        self.views: dict[JsonPeer, _PeerView] = {}
        self._version = int(time.time() * 1000)
        self._code = document.code
        self.versions: collections.deque[tuple[int, str]] = collections.deque(
            [(self._version, self._code)], maxlen=KEPT_VERSIONS
        )
        self._kept = len(self._code)  # the characters of self.versions, in all
        self._check: asyncio.Handle | asyncio.TimerHandle | None = None
        self._origin: object | None = None

    @property
    def peers(self) -> list[JsonPeer]:
        return list(self.views)

    @property
    def code(self) -> str:
        """The code (the first code cell's source) as of :attr:`version`."""
        self.catch_up()
        return self._code

    @property
    def version(self) -> int:
        """The number of the document's text as of now (each change a JSON peer could be told
        of counts one)."""
        self.catch_up()
        return self._version

    def catch_up(self) -> None:
        """Read the text now if a change is waiting to be looked at (:meth:`changed`)."""
        if self._check is not None:
            self._check.cancel()
            self._look()

    def add(self, peer: JsonPeer, code_updates: bool = True) -> None:
        """``peer`` has (or has again) the text as of now; ``code_updates``: whether it is
        sent the text when it changes."""
        self.catch_up()
        self.views[peer] = _PeerView(
            collections.deque([self._code], maxlen=SEEN_VERSIONS),
            self._version,
            code_updates=code_updates,
        )

    def remove(self, peer: JsonPeer) -> None:
        self.views.pop(peer, None)

    def broadcast(
        self, event: Event, but: object | None = None, roles: tuple[str, ...] | None = None
    ) -> None:
        for peer in list(self.views):
            if peer is not but and (roles is None or peer.role in roles):
                peer.send_event(event)

    def base_of(self, peer: JsonPeer, code: str, base_version: int | None) -> str | None:
        """The text ``peer`` most likely wrote ``code`` on: the version it names, or else the
        closest of the texts it had (the most recent among equals, so that typing a character
        and deleting it again is seen as the deletion)."""
        self.catch_up()
        view = self._view(peer)
        if base_version is not None:
            view.numbered = True
            base = next((text for n, text in self.versions if n == base_version), None)
            if base is not None:
                return base
        ranked = [(_shared(text, code), index) for index, text in enumerate(view.texts)]
        return view.texts[max(ranked)[1]] if ranked else None

    def sent(self, peer: JsonPeer, code: str) -> None:
        """``peer``'s whole text ``code`` has been applied (its change, if any, is looked at
        with the others: :meth:`changed`)."""
        view = self._view(peer)
        view.texts.append(code)
        if self._check is None and self.document.code == self._code:
            # Nothing changed (the text was already there): still tell a peer that counts
            # versions which one it has.
            self._tell(peer, view, self._update(None))

    def changed(self, origin: object | None) -> None:
        """The document changed (by ``origin``): look at the code right after, once for every
        change made meanwhile (the document may not be read inside its transaction; under
        load, a burst is read at once), or, while no peer is sent the text, within
        :data:`UNFOLLOWED_WITHIN`. The author is named only if all were one peer's."""
        if self._check is None:
            loop = asyncio.get_running_loop()
            if any(view.code_updates for view in self.views.values()):
                self._check = loop.call_soon(self._look)
            else:
                self._check = loop.call_later(UNFOLLOWED_WITHIN, self._look)
            self._origin = origin
        elif self._origin is not origin:
            self._origin = None

    def _look(self) -> None:
        origin, self._origin, self._check = self._origin, None, None
        code = self.document.code
        if code == self._code:
            return
        self._code = code
        self._version += 1
        self._keep(code)
        author = origin if origin in self.views else None
        followed = any(view.code_updates for view in self.views.values())
        update = self._update(author) if followed else None
        for peer in list(self.views):
            self._tell(peer, self.views[peer], update)
        self.on_code(code)

    def _keep(self, code: str) -> None:
        """Number the new text, forgetting the oldest versions past the bounds (the newest is
        always kept)."""
        if len(self.versions) == KEPT_VERSIONS:
            self._kept -= len(self.versions[0][1])  # pushed out by the append
        self.versions.append((self._version, code))
        self._kept += len(code)
        while self._kept > KEPT_CHARACTERS and len(self.versions) > 1:
            self._kept -= len(self.versions.popleft()[1])

    def _view(self, peer: JsonPeer) -> _PeerView:
        return self.views.setdefault(
            peer, _PeerView(collections.deque(maxlen=SEEN_VERSIONS), self._version)
        )

    def _update(self, author: JsonPeer | None) -> CodeUpdate:
        return CodeUpdate(
            client_id=author.client_id if author else None,
            display_name=author.display_name if author else None,
            code=self._code,
            language=self.document.language,
            version=self._version,
        )

    def _tell(self, peer: JsonPeer, view: _PeerView, update: CodeUpdate | None) -> None:
        """Send ``peer`` the current code if it lacks it (the author too, if others' edits
        were merged into what it sent), or, if it counts versions, the current version
        (``update``: None when no peer is sent the text)."""
        if view.version == self._version:
            return
        view.version = self._version
        if not view.texts or view.texts[-1] != self._code:
            view.texts.append(self._code)
        elif not view.numbered:
            return
        if view.code_updates and update is not None:
            peer.send_event(update)

    def close(self, code: int, reason: str) -> None:
        self.catch_up()
        for peer in list(self.views):
            peer.close(code, reason)


def _shared(a: str, b: str) -> int:
    """How many characters ``a`` and ``b`` share at their beginning and end together."""
    start, a_end, _ = changed_span(a, b)
    return start + (len(a) - a_end)
