"""Session ids and host tokens.

Host tokens are random 256-bit secrets, so a plain SHA-256 of them is a safe thing to store (a
slow password hash buys nothing against guessing 2**256 values); comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


def new_session_id(length: int) -> str:
    """A URL-safe random id of ``length`` characters."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_token() -> str:
    """A random 256-bit secret: a host token or a participant token."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)
