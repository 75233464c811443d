"""Reading a kernel's messages off the wire: the signature checked, the headers decoded, the
content left as bytes for the caller to decode only if it wants it.

jupyter_client's ``Session.deserialize`` does the same and more, for every message: it parses
each string of both headers as a possible ISO 8601 date (a regular expression, then dateutil),
and its protocol adapter imports a module on each call. kernelpad reads no date of a message,
and its kernels speak version 5 of the protocol, so that work bought nothing: in a series of
trivial Python runs it was 12% of the server's event loop (py-spy), on the path of every run's
every message. Messages of an older protocol version still go through jupyter_client's adapter.
"""

from __future__ import annotations

from hmac import compare_digest
from typing import Any

from jupyter_client.adapter import adapt
from jupyter_client.session import Session

#: Frames of a message after its identities and delimiter: signature, header, parent header,
#: metadata, content (buffers may follow).
FRAMES = 5


class BadMessage(ValueError):
    """A message that is not one of the kernel's: too short, unsigned, or wrongly signed."""


def read_message(session: Session, parts: list[bytes]) -> dict[str, Any]:
    """The message in ``parts`` (what follows the delimiter), as ``Session.deserialize`` with
    ``content=False`` gives it, except that dates stay the strings they were sent as: its
    ``content`` is the undecoded frame (``session.unpack`` decodes it)."""
    if len(parts) < FRAMES:
        raise BadMessage(f"a message of {len(parts)} frames (at least {FRAMES})")
    if session.auth is not None:
        if not parts[0]:
            raise BadMessage("an unsigned message")
        if not compare_digest(parts[0], session.sign(parts[1:FRAMES])):
            raise BadMessage("a message with a wrong signature")
    header = session.unpack(parts[1])
    message = {
        "header": header,
        "msg_id": header.get("msg_id"),
        "msg_type": header.get("msg_type"),
        "parent_header": session.unpack(parts[2]),
        "metadata": session.unpack(parts[3]),
        "content": parts[4],
        "buffers": [memoryview(buffer) for buffer in parts[FRAMES:]],
    }
    if not str(header.get("version", "")).startswith("5."):
        # The adapter rewrites the content (a version 4 stream's "data" is version 5's
        # "text"): given decoded, and handed back encoded as the rest are.
        message["content"] = session.unpack(parts[4])
        message = adapt(message)
        message["content"] = session.pack(message["content"])
    return message
