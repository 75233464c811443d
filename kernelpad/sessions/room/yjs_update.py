"""What a Yjs update holds, read without applying it: whose structs, from which clock, what
they hang on, under which root types, and what they delete.

The room needs this before it applies a participant's update. An update that depends on
something the server's copy lacks is not refused by pycrdt: it is held back, silently, and
integrated later, inside whichever transaction brings the missing piece. That would let a
participant slip a change past every check (a lock, a size limit) and have it land as someone
else's. An update that names a root type the notebook does not have would grow the document
outside everything the room measures. Both are known from the update's structure alone,
which this module reads (Yjs' update format, version 1, as y-websocket sends it; see Yjs'
``encoding.js`` and lib0's ``decoding.js``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# An item's info byte: its content's kind in the low five bits, and flags.
_CONTENT = 0x1F
_HAS_ORIGIN = 0x80
_HAS_RIGHT_ORIGIN = 0x40
_HAS_PARENT_SUB = 0x20
_GC, _SKIP = 0, 10
# Content kinds (Yjs' ContentDeleted ... ContentDoc).
_DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC = range(1, 10)
# Type references whose content carries a name (YXmlElement, YXmlHook).
_NAMED_TYPES = (3, 5)

ID = tuple[int, int]  # (client, clock)


class MalformedUpdate(ValueError):
    """The bytes are not a Yjs update."""


@dataclass(slots=True)
class Struct:
    """One struct of an update: where it starts, how many clock ticks it covers, and the
    structs it needs to be integrated (its origins, its parent)."""

    clock: int
    length: int
    needs: tuple[ID, ...] = ()
    skip: bool = False  # a gap in the update: integrated only if already known


@dataclass(slots=True)
class UpdateShape:
    """The structure of an update."""

    structs: dict[int, list[Struct]] = field(default_factory=dict)  # by client
    roots: set[str] = field(default_factory=set)  # root types it puts items in by name
    deletes: list[tuple[int, int, int]] = field(default_factory=list)  # client, clock, length
    subdocuments: bool = False

    def ends(self) -> dict[int, int]:
        """Each client's clock after this update's structs."""
        return {
            client: structs[-1].clock + structs[-1].length
            for client, structs in self.structs.items()
            if structs
        }


class _Reader:
    """lib0's decoding of the few types an update uses."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MalformedUpdate("the update ends too early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uint(self) -> int:
        # Every struct has a few, and a client id takes 8 bytes: this is the reader's hot loop,
        # kept to local variables.
        data, pos = self.data, self.pos
        try:
            byte = data[pos]
            value, shift = byte & 0x7F, 7
            while byte >= 0x80:
                pos += 1
                byte = data[pos]
                value |= (byte & 0x7F) << shift
                shift += 7
                if shift > 70:
                    raise MalformedUpdate("a number is too long")
        except IndexError:
            raise MalformedUpdate("the update ends too early") from None
        self.pos = pos + 1
        return value

    def skip_int(self) -> None:
        while self.byte() >= 0x80:
            pass

    def buffer(self) -> bytes:
        size = self.uint()
        end = self.pos + size
        if end > len(self.data):
            raise MalformedUpdate("the update ends too early")
        value = self.data[self.pos : end]
        self.pos = end
        return value

    def string(self) -> str:
        try:
            return self.buffer().decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise MalformedUpdate("a string is not UTF-8") from exc

    def skip(self, size: int) -> None:
        if self.pos + size > len(self.data):
            raise MalformedUpdate("the update ends too early")
        self.pos += size

    def any(self, depth: int = 0) -> None:
        """Skip one lib0 ``any`` value."""
        if depth > 100:
            raise MalformedUpdate("a value is nested too deeply")
        kind = self.byte()
        if kind in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if kind == 125:
            self.skip_int()
        elif kind == 124:
            self.skip(4)
        elif kind in (123, 122):
            self.skip(8)
        elif kind in (119, 116):  # string, bytes
            self.buffer()
        elif kind == 118:  # object
            for _ in range(self.uint()):
                self.buffer()
                self.any(depth + 1)
        elif kind == 117:  # array
            for _ in range(self.uint()):
                self.any(depth + 1)
        else:
            raise MalformedUpdate(f"unknown value type {kind}")


def read_update(update: bytes) -> UpdateShape:
    """The shape of a Yjs (v1) update; raises :class:`MalformedUpdate`."""
    reader = _Reader(update)
    shape = UpdateShape()
    for _ in range(reader.uint()):
        count, client, clock = reader.uint(), reader.uint(), reader.uint()
        structs = shape.structs.setdefault(client, [])
        for _ in range(count):
            struct = _read_struct(reader, shape, clock)
            structs.append(struct)
            clock += struct.length
    for _ in range(reader.uint()):
        client = reader.uint()
        for _ in range(reader.uint()):
            clock = reader.uint()
            shape.deletes.append((client, clock, reader.uint()))
    if reader.pos != len(update):
        raise MalformedUpdate("bytes after the update's end")
    return shape


def _read_struct(reader: _Reader, shape: UpdateShape, clock: int) -> Struct:
    info = reader.byte()
    kind = info & _CONTENT
    if kind == _GC:
        return Struct(clock, reader.uint())
    if kind == _SKIP:
        return Struct(clock, reader.uint(), skip=True)
    needs: list[ID] = []
    if info & _HAS_ORIGIN:
        needs.append((reader.uint(), reader.uint()))
    if info & _HAS_RIGHT_ORIGIN:
        needs.append((reader.uint(), reader.uint()))
    if not info & (_HAS_ORIGIN | _HAS_RIGHT_ORIGIN):
        # No origin to take the parent from: the parent is named, a root or an item.
        if reader.uint() == 1:
            shape.roots.add(reader.string())
        else:
            needs.append((reader.uint(), reader.uint()))
        if info & _HAS_PARENT_SUB:
            reader.buffer()
    return Struct(clock, _read_content(reader, shape, kind), tuple(needs))


def _read_content(reader: _Reader, shape: UpdateShape, kind: int) -> int:
    """Read an item's content; its length in clock ticks."""
    if kind == _DELETED:
        return reader.uint()
    if kind == _JSON:
        size = reader.uint()
        for _ in range(size):
            reader.buffer()
        return size
    if kind == _STRING:
        # Yjs counts a string in UTF-16 code units.
        return len(reader.string().encode("utf-16-le", "surrogatepass")) // 2
    if kind in (_BINARY, _EMBED):
        reader.buffer()
        return 1
    if kind == _FORMAT:
        reader.buffer()
        reader.buffer()
        return 1
    if kind == _TYPE:
        if reader.uint() in _NAMED_TYPES:
            reader.buffer()
        return 1
    if kind == _ANY:
        size = reader.uint()
        for _ in range(size):
            reader.any()
        return size
    if kind == _DOC:
        shape.subdocuments = True
        reader.buffer()
        reader.any()
        return 1
    raise MalformedUpdate(f"unknown content type {kind}")


def sync_update(payload: bytes) -> bytes:
    """The update a y-protocols sync message carries (sync step 2 or an update: its type,
    then the update as a byte string)."""
    reader = _Reader(payload)
    reader.uint()
    update = reader.buffer()
    if reader.pos != len(payload):
        raise MalformedUpdate("bytes after the sync message's end")
    return update


def read_state_vector(state: bytes) -> dict[int, int]:
    """A document's state vector (pycrdt's ``get_state()``): each client's next clock."""
    reader = _Reader(state)
    return {reader.uint(): reader.uint() for _ in range(reader.uint())}


def held_back(shape: UpdateShape, clocks: Mapping[int, int]) -> str | None:
    """Why a document whose clocks are ``clocks`` would hold the update back instead of
    integrating it whole, or None if it would integrate it all.

    Integration is replayed as Yjs does it: a client's structs in order, each once its start is
    known and everything it needs is; a struct may need one of another client's in the same
    update. Deletions must name what is known by then."""
    if not shape.deletes and len(shape.structs) == 1:
        # A keystroke: one client's structs, in order, after what the server has, hanging on
        # what it has. Checked without copying the clocks.
        [(client, structs)] = shape.structs.items()
        have = clocks.get(client, 0)
        if structs and structs[0].clock == have and not structs[0].skip:
            for struct in structs:
                if struct.skip or any(
                    clock >= (have if other == client else clocks.get(other, 0))
                    for other, clock in struct.needs
                ):
                    break
                have = struct.clock + struct.length
            else:
                return None
    known = dict(clocks)
    remaining = {client: list(structs) for client, structs in shape.structs.items()}
    progress = True
    while progress and remaining:
        progress = False
        for client in list(remaining):
            structs = remaining[client]
            while structs and _integrates(structs[0], client, known):
                structs.pop(0)
                progress = True
            if not structs:
                del remaining[client]
    if remaining:
        client = next(iter(remaining))
        return f"it needs changes the server does not have (client {client})"
    for client, clock, length in shape.deletes:
        if clock + length > known.get(client, 0):
            return f"it deletes what the server does not have (client {client})"
    return None


def _integrates(struct: Struct, client: int, known: dict[int, int]) -> bool:
    """Whether ``struct`` integrates now; if it does, ``known`` counts it."""
    have = known.get(client, 0)
    end = struct.clock + struct.length
    if end <= have:
        return True  # already known: Yjs skips it
    if struct.clock > have or struct.skip:
        return False  # a gap before it
    # A struct that needs itself or a later one of its own client (which yrs does not
    # integrate either) counts as missing too.
    if any(clock >= known.get(other, 0) for other, clock in struct.needs):
        return False
    known[client] = end
    return True


def advance(clocks: dict[int, int], ends: Iterable[tuple[int, int]]) -> None:
    """Count structs that were integrated: each client's clock is at least its ``end``."""
    for client, end in ends:
        if end > clocks.get(client, 0):
            clocks[client] = end
