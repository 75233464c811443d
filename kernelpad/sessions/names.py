"""What a person's name may be: one rule for every place a name comes in.

A name is shown to the other participants: in the participant list, beside a cursor, in the
history. Characters that are not seen but change what is seen must not be in it. A right-to-left
override (U+202E) shows the text after it backwards: a candidate named "Alan", the override and
"(tsoh)" reads "Alan (host)" in the list. Zero-width characters make two names that look alike
different; line and paragraph separators break the line a name is shown on. So a name holds
none of Unicode's control (Cc), format (Cf), surrogate (Cs), line separator (Zl) or paragraph
separator (Zp) characters, but for the two joiners: ZWJ (U+200D) makes one emoji of several
(a person's "👩‍💻") and ZWNJ (U+200C) is needed to spell names in Persian and several Indic
scripts, and neither reverses or hides text.

The HTTP API and both sockets (through ``kernelpad.web.schemas.PersonName``) and a presence
sent over Yjs (:mod:`kernelpad.sessions.room.presence`) all ask :func:`person_name`.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 100

# Unicode categories a name may not hold (see the module's docstring for why).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Format characters names need (see the module's docstring).
JOINERS = frozenset({"\u200c", "\u200d"})


def person_name(value: str) -> str:
    """``value`` as a name: trimmed, 1 to ``MAX_NAME_LENGTH`` characters, and nothing
    invisible or line-breaking in it. Raises ``ValueError`` with a message for the person who
    typed it (pydantic shows it as the field's error)."""
    name = value.strip()
    if not name:
        raise ValueError("must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters")
    for char in name:
        if unicodedata.category(char) in REFUSED_CATEGORIES and char not in JOINERS:
            # Short: the Yjs socket says it in a close reason, of at most 123 bytes.
            raise ValueError(f"must not contain invisible characters ({describe(char)})")
    return name


def describe(char: str) -> str:
    """A character as a person can look it up: ``U+202E RIGHT-TO-LEFT OVERRIDE``."""
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{code} {name}" if name else code
