"""The least a server can do for ``load.py``'s interviews: the floor of its load through a server.

``load_floor.py`` runs ``load.py``'s code on bare kernels with nobody typing: what the kernels
alone give. An interview also has two people typing, and a server between them and the kernels:
woken by every edit and every run, on the same cores as the kernels. This server does only
what any collaborative notebook server must do for that, with ``load.py``'s own clients:

- ``/ws/yjs/ROOM``: a Yjs room (y-websocket's protocol, as kernelpad's). The room holds the
  notebook (one code cell, as a new session's) in a pycrdt document: a joining client's sync
  step 1 is answered with the document, and each update is applied to it and sent on to the
  room's other clients;
- ``/ws/sessions/ROOM``: runs over JSON (kernelpad's ``execute`` message): each output is sent
  as it comes, then ``execution_finished``, once the kernel's reply and idle status are in (and
  the done probe's marker, for a language that has one, as kernelpad settles a run). Each room's
  kernels are given by connection files ``ROOM-LANGUAGE.json`` in ``--kernels``, started by
  someone else.

No participants, no rules, no storage, no history: what kernelpad's runs take at each number of
interviews beyond what they take through this server is kernelpad's own.
``load_floor.py --through-server`` starts it and drives it:

    python bench/load_server_floor.py --port PORT --kernels DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from execute_latency import LANGUAGES
from harness import run_on_kernelpads_loop
from jupyter_ydoc import YNotebook
from pycrdt import Doc, YMessageType, handle_sync_message
from server_floor import RUN_TIMEOUT, Kernel, serve_until_stopped
from tornado import web, websocket


class Room:
    """One interview's notebook and the Yjs clients editing it."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        notebook = YNotebook(self.doc)
        notebook.append_cell({"cell_type": "code", "source": "", "metadata": {}, "outputs": []})
        self.clients: set[YjsSocket] = set()


class YjsSocket(websocket.WebSocketHandler):
    room: Room

    def open(self, name: str) -> None:
        self.set_nodelay(True)
        rooms: dict[str, Room] = self.settings["rooms"]
        if name not in rooms:  # the first to join makes it: its notebook, for both typists
            rooms[name] = Room()
        self.room = rooms[name]
        self.room.clients.add(self)

    def on_message(self, message: str | bytes) -> None:
        if not isinstance(message, bytes) or message[0] != YMessageType.SYNC:
            return
        reply = handle_sync_message(message[1:], self.room.doc)
        if reply is not None:
            self.write_message(reply, binary=True)
        if message[1] == 2:  # an update: the others get it as it came
            for client in self.room.clients:
                if client is not self:
                    client.write_message(message, binary=True)

    def on_close(self) -> None:
        self.room.clients.discard(self)


class RunSocket(websocket.WebSocketHandler):
    name: str

    def open(self, name: str) -> None:
        self.set_nodelay(True)
        self.name = name

    async def on_message(self, message: str | bytes) -> None:
        data = json.loads(message)
        if data["type"] != "execute":
            return  # join_session: nobody's identity is checked here
        kernels: dict[str, Kernel] = self.settings["kernels"]
        kernel = kernels[f"{self.name}-{data['data']['language']}"]

        def sent(output: dict[str, Any]) -> None:
            self.write_message({"type": "output", "data": output})

        status = await kernel.run(data["data"]["code"], sent)
        self.write_message({"type": "execution_finished", "data": {"status": status}})


async def serve(port: int, folder: Path) -> None:
    kernels = {}
    for connection_file in sorted(folder.glob("*-*.json")):
        language = connection_file.stem.rsplit("-", 1)[1]
        kernels[connection_file.stem] = Kernel(str(connection_file), LANGUAGES[language].done_probe)
    for kernel in kernels.values():
        kernel.kc.start_channels()
    await asyncio.gather(*(k.kc.wait_for_ready(timeout=RUN_TIMEOUT) for k in kernels.values()))
    app = web.Application(
        [(r"/ws/yjs/([^/]+)", YjsSocket), (r"/ws/sessions/([^/]+)", RunSocket)],
        kernels=kernels,
        rooms={},
        websocket_max_message_size=1 << 20,
    )
    await serve_until_stopped(app, port)
    for kernel in kernels.values():
        kernel.kc.stop_channels()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kernels", type=Path, required=True, help="their connection files")
    args = parser.parse_args()
    run_on_kernelpads_loop(serve(args.port, args.kernels))


if __name__ == "__main__":
    main()
