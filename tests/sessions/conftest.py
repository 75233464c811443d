"""The fixtures of the room's tests: a room on a fake store, with the default rules."""

from __future__ import annotations

import pytest

from kernelpad.sessions.access import Access, RunLimits
from kernelpad.sessions.document import SessionDocument
from kernelpad.sessions.room.room import Room
from tests.sessions.room_fakes import FakeStore


@pytest.fixture
def access() -> Access:
    return Access(RunLimits())


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def room(access: Access, store: FakeStore) -> Room:
    document = SessionDocument.create("print(1)\n", "python")
    store.updates.append((document.state(), None))  # as the session's creation stores it
    return Room("s1", document, store, lambda role, action: access.check("s1", role, action))  # type: ignore[arg-type]
