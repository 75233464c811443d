"""What one keystroke costs the server's CPU, in process: kernelpad's room against the least room.

``load.py`` puts 150 interviews on the server, each with two people typing: about 600 edits a
second, which is most of what the server does there. Its CPU per edit, read from outside, mixes
the sockets' cost (Tornado's, the same for any server) with kernelpad's own. This benchmark
measures kernelpad's own, with no socket and no client in the way, and divides it:

- ``pacing``: nothing done with the edits: what giving them at that pace costs by itself (a
  timer and a wake-up of the event loop each, dear on a virtual machine), taken off the others.
- ``least``: the least a room can do with an edit: apply it to the notebook's pycrdt document
  and send it on to the room's other client (what ``load_server_floor.py`` does).
- ``unstored``: kernelpad's room (rules, the undo manager that can take a change back, the
  shape check, the relay in order, the ``code`` column read behind), on a store that commits
  at once and writes nothing.
- ``kernelpad``: the same room on a real SQLite store: each edit committed by the database
  thread before it is sent on, as the server does.

Every variant is given the same edits, made beforehand by two pycrdt clients per room (markers
typed at the start of random lines, as ``load.py``'s typists do), at the same pace, in turns,
and sends what it sends to clients that only count it. Each room also has a JSON client that is
sent no text (as the browser pad and ``load.py``'s runner). CPU is the process's, all threads
(``time.process_time``), over the timed edits; the figures are per edit, the median of the
rounds, less ``pacing``'s, and each variant over ``least`` in the same run.

    python bench/edit_cost.py [--rooms 150] [--rate 600] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import machine_info, run_on_kernelpads_loop
from pycrdt import Array, Doc, Text, create_update_message, handle_sync_message

from kernelpad.sessions.access import Access, Rules, RunLimits
from kernelpad.sessions.document import SessionDocument
from kernelpad.sessions.events import Event
from kernelpad.sessions.models import Participant, Session
from kernelpad.sessions.room.room import Room
from kernelpad.sessions.storage.sqlite import SQLite
from kernelpad.sessions.storage.store import SessionStore

VARIANTS = ("pacing", "least", "unstored", "kernelpad")
RESULTS = Path(__file__).resolve().parent / "results"


class Client:
    """A client of a room that counts what it is sent (a Yjs one and a JSON one in one)."""

    def __init__(self, client_id: str, role: str) -> None:
        self.client_id = client_id
        self.display_name = client_id
        self.role = role
        self.received = 0

    def send_bytes(self, message: bytes) -> None:
        self.received += 1

    def send_event(self, event: Event) -> None:
        self.received += 1

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        pass


def typed_edits(
    rooms: int, edits: int, seed: int = 7
) -> tuple[bytes, list[list[bytes]], list[str]]:
    """The notebook every room starts from, each room's edits (y-websocket update messages, the
    two typists' in turns, each on the text as both had it then), and each room's text after
    them."""
    rng = random.Random(seed)
    start = SessionDocument.create("", "python").state()
    by_room, texts = [], []
    for _ in range(rooms):
        typists: list[Doc[Any]] = [Doc(), Doc()]
        for doc in typists:
            doc.apply_update(start)
        messages = []
        for n in range(edits):
            author, other = typists[n % 2], typists[1 - n % 2]
            source: Text = author.get("cells", type=Array)[0]["source"]
            lines = str(source).split("\n")
            line = rng.randrange(len(lines))
            source.insert(sum(map(len, lines[:line])) + line, f"#t{n % 2}-{n}#\n")
            update = author.get_update(other.get_state())  # the edit, as the other lacks it
            other.apply_update(update)
            messages.append(create_update_message(update))
        by_room.append(messages)
        texts.append(str(source))
    return start, by_room, texts


class LeastRoom:
    """A pycrdt document and its clients: each update applied, then sent to the others."""

    def __init__(self, start: bytes, text: str) -> None:
        self.doc: Doc[Any] = Doc()
        self.doc.apply_update(start)
        self.clients = [Client("a", "host"), Client("b", "candidate")]
        self.text = text  # what the typists will have written

    def check(self) -> None:
        written = str(self.doc.get("cells", type=Array)[0]["source"])
        if written != self.text:
            raise RuntimeError(f"a room's text differs from its typists': {written[:80]!r}")

    def receive(self, author: int, message: bytes) -> None:
        handle_sync_message(message[1:], self.doc)
        for n, client in enumerate(self.clients):
            if n != author:
                client.send_bytes(message)


class KernelpadRoom:
    """kernelpad's room for a session, with its two typists and a JSON client."""

    def __init__(self, session_id: str, start: bytes, text: str, store: Any) -> None:
        self.text = text
        access = Access(RunLimits())
        access.set_rules(session_id, Rules())  # as a session that was loaded
        document = SessionDocument("python", [start])
        self.room = Room(
            session_id, document, store, lambda role, action: access.check(session_id, role, action)
        )
        self.clients = [Client(f"{session_id}-a", "host"), Client(f"{session_id}-b", "candidate")]
        for client in self.clients:
            self.room.add_yjs_peer(client)
        self.room.add_json_peer(Client(f"{session_id}-runner", "host"), code_updates=False)

    def receive(self, author: int, message: bytes) -> None:
        self.room.yjs.receive(self.clients[author], message)

    def check(self) -> None:
        if self.room.document.code != self.text:
            raise RuntimeError(
                f"a room's text differs from its typists': {self.room.document.code[:80]!r}"
            )
        self.room.close_all(1001, "the benchmark is over")  # and stores what is pending


class AtOnceStore:
    """A store that commits at once and writes nothing (``unstored``)."""

    def _done(self) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def append_update(self, session_id: str, data: bytes, at: float, author: Any = None) -> Any:
        return self._done()

    def save_snapshot(self, session_id: str, data: bytes, at: float) -> Any:
        return self._done()

    def set_code(self, session_id: str, code: str) -> Any:
        return self._done()


async def sqlite_store(folder: Path, rooms: int) -> SessionStore:
    store = SessionStore(SQLite(folder / "edit_cost.sqlite"))
    await store.open()
    now = time.time()
    for n in range(rooms):
        await store.add_session(
            Session(
                id=f"r{n}",
                name="Edits",
                host_name="Ada",
                language="python",
                code="",
                max_participants=4,
                host_token_hash="h",
                created_at=now,
                last_activity=now,
                participants=[Participant(f"r{n}-a", "Ada", "host", now)],
            )
        )
    return store


def _nothing(author: int, message: bytes) -> None:
    pass


async def paced(
    receive: Sequence[Callable[[int, bytes], None]], edits: list[list[bytes]], rate: float
) -> None:
    """Give each room its edits, ``rate`` a second in all, rooms in turn."""
    order = [(room, n) for n in range(len(edits[0])) for room in range(len(edits))]
    # perf_counter, not the loop's clock: uvloop's counts whole milliseconds.
    began = time.perf_counter()
    for k, (room, n) in enumerate(order):
        due = began + k / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        receive[room](n % 2, edits[room][n])


async def delivered(clients: list[Client], count: int, timeout: float = 30.0) -> None:
    """Wait until the clients were sent ``count`` messages in all (the last commits land)."""
    deadline = time.monotonic() + timeout
    while sum(c.received for c in clients) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(c.received for c in clients)} of {count} delivered")
        await asyncio.sleep(0.001)


async def measure(
    variant: str, start: bytes, edits: list[list[bytes]], texts: list[str], rate: float
) -> float:
    """CPU milliseconds per edit of ``variant``; raises unless every room ends with the text
    its typists wrote and every edit reached the other typist."""
    rooms = len(edits)
    count = sum(map(len, edits))
    with tempfile.TemporaryDirectory() as folder:
        store: Any = None
        rooms_made: list[LeastRoom] | list[KernelpadRoom] = []
        if variant == "least":
            rooms_made = [LeastRoom(start, text) for text in texts]
        elif variant != "pacing":
            in_sqlite = variant == "kernelpad"
            store = await sqlite_store(Path(folder), rooms) if in_sqlite else AtOnceStore()
            rooms_made = [
                KernelpadRoom(f"r{n}", start, text, store) for n, text in enumerate(texts)
            ]
        receive = [r.receive for r in rooms_made] or [_nothing] * rooms
        clients = [c for r in rooms_made for c in r.clients]
        try:
            cpu_began = time.process_time()
            await paced(receive, edits, rate)
            # The typists take turns, so no two edits in a row of a room are one author's
            # (which the relay would send as one message): each edit is one message to the
            # other typist.
            await delivered(clients, count if clients else 0)
            cpu = time.process_time() - cpu_began
            for room in rooms_made:
                room.check()
        finally:
            if isinstance(store, SessionStore):
                await store.close()
    return cpu * 1000 / count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=150, help="rooms (150)")
    parser.add_argument("--rate", type=float, default=600.0, help="edits a second in all (600)")
    parser.add_argument("--seconds", type=float, default=10.0, help="of edits per variant (10)")
    parser.add_argument("--rounds", type=int, default=3, help="of every variant, in turns (3)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="which, comma-separated (all)"
    )
    parser.add_argument("--output", default="edit_cost", help="name of the results file")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where it goes")
    args = parser.parse_args()
    per_room = max(2, round(args.rate * args.seconds / args.rooms))
    start, edits, texts = typed_edits(args.rooms, per_room)
    print(f"{args.rooms} rooms, {per_room} edits each, {args.rate:g} a second", flush=True)
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    costs: dict[str, list[float]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants if round_ % 2 == 0 else reversed(variants):
            costs[variant].append(await measure(variant, start, edits, texts, args.rate))
            print(f"  round {round_ + 1}, {variant}: {costs[variant][-1]:.3f} ms", flush=True)
    median = {v: statistics.median(c) for v, c in costs.items()}
    pacing = median.get("pacing", 0.0)
    own = {v: median[v] - pacing for v in variants if v != "pacing"}
    over = {v: own[v] / own["least"] for v in own} if "least" in own else {}
    print(f"pacing alone: {pacing:.3f} ms of CPU an edit (taken off the others)")
    for variant, cost in own.items():
        ratio = f" ({over[variant]:.2f}x least)" if over else ""
        print(f"{variant:>10}: {cost:.3f} ms of CPU an edit{ratio}")
    results = {
        "machine": machine_info(),
        "settings": {**vars(args), "edits_per_room": per_room, "results_dir": None},
        "ms_per_edit": costs,
        "median_ms_per_edit": median,
        "ms_per_edit_less_pacing": own,
        "over_least": over,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{args.output}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    sys.exit(run_on_kernelpads_loop(main()))
