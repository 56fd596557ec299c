"""What every proof of a webhook's origin is made of: the refusal, HMAC-SHA256 and the
constant-time comparison, and the admin API's bearer token.

Each platform's own checks live in its provider module (``webhooks/providers/<platform>.py``),
as pure functions of the request's bytes and a secret, tested against the golden values
computed from the platforms' documented examples (shared/reference/api-wire-formats.md).
Every comparison goes through
:func:`hmac.compare_digest`: comparing a signature with ``==`` stops at the first wrong byte,
and the time that takes tells an attacker how much of a forged signature is right.

A failed check raises :class:`Rejected` with the HTTP status to answer (401 when the proof
is missing, 403 when it is wrong) and a reason that is safe to show: it never contains the
secret, the expected signature or the one received.
"""

from __future__ import annotations

import hashlib
import hmac


class Rejected(Exception):
    """The request is refused with ``status``; ``reason`` is safe to log and to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def hmac_sha256(secret: str, message: bytes) -> bytes:
    # Not the one-shot hmac.digest(): OpenSSL's one-shot HMAC lets go of the GIL whatever the
    # length, and getting it back behind the server's other threads costs a thread switch
    # per request; the object form keeps it for messages under 2 KiB, computed in microseconds.
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def same(expected: str | bytes, given: str | bytes) -> bool:
    """Constant-time equality of two strings (or byte strings) of any content.

    ``hmac.compare_digest`` refuses non-ASCII ``str``; encoding first makes any header value
    comparable without an exception on odd input.
    """
    if isinstance(expected, str):
        expected = expected.encode("utf-8", "surrogatepass")
    if isinstance(given, str):
        given = given.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected, given)


def require(header: str | None, name: str) -> str:
    if header is None or not header.strip():
        raise Rejected(401, f"missing {name} header")
    return header.strip()


def check_bearer(expected: str, authorization: str | None) -> None:
    """``Authorization: Bearer <token>`` for the admin API."""
    if authorization is None or not authorization.strip():
        raise Rejected(401, "missing Authorization: Bearer <admin token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not same(expected, token.strip()):
        raise Rejected(403, "the admin token does not match")
