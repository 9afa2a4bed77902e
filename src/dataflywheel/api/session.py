"""The browser's proof that it holds the API key: a signed session cookie, set by the web page's login form.

The cookie holds an expiry time and an HMAC of it keyed by the API key, never the key itself; changing the
key ends every session. ``HttpOnly`` (page scripts cannot read it) and ``SameSite=Strict`` (no other site's
page sends it). Requests that change something with the cookie alone must also carry :data:`PAGE_HEADER`, a
header a cross-origin page cannot send without a CORS preflight this server never grants.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

__all__ = ["COOKIE", "MAX_AGE_S", "PAGE_HEADER", "session_token", "valid_session"]

COOKIE: Final = "flywheel_session"
MAX_AGE_S: Final = 7 * 24 * 3600
"""A session lasts a week."""
PAGE_HEADER: Final = "X-Flywheel-Page"
_PURPOSE: Final = b"flywheel-web-session:"


def _signature(key: str, expires: int) -> str:
    return hmac.new(key.encode(), _PURPOSE + str(expires).encode(), hashlib.sha256).hexdigest()


def session_token(key: str, *, now: float | None = None, max_age_s: int = MAX_AGE_S) -> str:
    """A cookie value for a browser that gave ``key``, valid ``max_age_s`` from ``now``."""
    expires = int((time.time() if now is None else now) + max_age_s)
    return f"{expires}.{_signature(key, expires)}"


def valid_session(token: str | None, key: str, *, now: float | None = None) -> bool:
    """Whether ``token`` was made with ``key`` and has not expired."""
    if not token:
        return False
    expires_text, sep, signature = token.partition(".")
    if not sep or not expires_text.isdigit():
        return False
    expires = int(expires_text)
    if expires < (time.time() if now is None else now):
        return False
    # Constant time: the comparison must not tell how much of a forged signature was right.
    return hmac.compare_digest(signature.encode(), _signature(key, expires).encode())
