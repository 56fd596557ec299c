"""Proving that a webhook request comes from the platform that claims to have sent it.

Every check here is a pure function of the request's bytes and a secret, so each one is
tested against the golden values computed from the platforms' documented examples
(shared/reference/api-wire-formats.md). Every comparison goes through
:func:`hmac.compare_digest`: comparing a signature with ``==`` stops at the first wrong byte,
and the time that takes tells an attacker how much of a forged signature is right.

A failed check raises :class:`Rejected` with the HTTP status to answer (401 when the proof
is missing, 403 when it is wrong) and a reason that is safe to show: it never contains the
secret, the expected signature or the one received.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import unquote

HUBSPOT_MAX_AGE_SECONDS = 300  # HubSpot's documented window (and its client library's)

# HubSpot's doc: decode these escapes in the URI before hashing (and only these).
_HUBSPOT_DECODED = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


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


def _require(header: str | None, name: str) -> str:
    if header is None or not header.strip():
        raise Rejected(401, f"missing {name} header")
    return header.strip()


def meta_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` as Meta sends it: ``sha256=`` + lowercase hex."""
    return "sha256=" + hmac_sha256(secret, body).hex()


def check_meta(secret: str, body: bytes, header: str | None) -> None:
    """Meta signs the raw body (in its escaped-unicode form) with the app secret."""
    given = _require(header, "X-Hub-Signature-256")
    if not same(meta_signature(secret, body), given.lower()):
        raise Rejected(403, "X-Hub-Signature-256 does not match the body")


def check_meta_verify_token(expected: str, mode: str | None, given: str | None) -> None:
    """The subscription handshake: ``hub.mode=subscribe`` with the token typed into Meta."""
    if mode != "subscribe":
        raise Rejected(403, "hub.mode must be 'subscribe'")
    if given is None or not same(expected, given):
        raise Rejected(403, "hub.verify_token does not match")


def check_google_key(expected: str, given: object) -> None:
    """Google's lead form webhook carries the advertiser's key in the body; no HMAC."""
    if not isinstance(given, str) or not given:
        raise Rejected(401, "missing google_key")
    if not same(expected, given):
        raise Rejected(403, "google_key does not match")


# LinkedIn's challenge codes are UUIDs (its "Webhook validation" doc and every delivery seen).
_LINKEDIN_CHALLENGE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def linkedin_challenge_response(secret: str, challenge_code: str) -> str:
    """``challengeResponse`` = hex HMAC-SHA256 of the challenge code with the client secret.

    The endpoint signs what anyone sends it, under the same key as ``X-LI-Signature``, so it
    signs only a UUID: a POST's signed message starts ``hmacsha256=``, which no UUID does,
    and the answer can never be a valid signature of a body.
    """
    if not _LINKEDIN_CHALLENGE.fullmatch(challenge_code):
        raise Rejected(400, "challengeCode must be a UUID, as LinkedIn sends it")
    return hmac_sha256(secret, challenge_code.encode("ascii")).hex()


def linkedin_signature(secret: str, body: bytes) -> str:
    """``X-LI-Signature``: hex HMAC-SHA256 of ``"hmacsha256=" + raw body``."""
    return hmac_sha256(secret, b"hmacsha256=" + body).hex()


def check_linkedin(secret: str, body: bytes, header: str | None) -> None:
    given = _require(header, "X-LI-Signature")
    # the header holds the bare hex digest; tolerate a "hmacsha256=" prefix
    given = given.removeprefix("hmacsha256=").lower()
    if not same(linkedin_signature(secret, body), given):
        raise Rejected(403, "X-LI-Signature does not match the body")


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """Base64 HMAC-SHA256 of ``method + uri + body + timestamp`` with the app's secret."""
    message = method.upper().encode() + uri.encode("utf-8") + body + timestamp.encode("ascii")
    return base64.b64encode(hmac_sha256(secret, message)).decode("ascii")


def hubspot_uri_forms(uri: str) -> list[str]:
    """The URI as sent, and with HubSpot's listed escapes decoded (its doc asks for the
    decoding, its Python library does not do it; both forms are accepted)."""
    decoded = _HUBSPOT_DECODED.sub(lambda m: unquote(m.group(0)), uri)
    return [uri] if decoded == uri else [uri, decoded]


def check_hubspot_v3(
    secret: str,
    *,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    max_age: float = HUBSPOT_MAX_AGE_SECONDS,
) -> None:
    """Signature v3 plus the timestamp window that stops a captured request being replayed."""
    given = _require(signature, "X-HubSpot-Signature-v3")
    stamp = _require(timestamp, "X-HubSpot-Request-Timestamp")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 16:
        raise Rejected(401, "X-HubSpot-Request-Timestamp must be epoch milliseconds")
    age = now - int(stamp) / 1000
    if abs(age) > max_age:
        raise Rejected(401, f"X-HubSpot-Request-Timestamp is outside the {max_age:.0f} s window")
    ok = False
    for form in hubspot_uri_forms(uri):
        # no short-circuit: every form is compared, so timing does not tell which one matched
        ok |= same(hubspot_v3_signature(secret, method, form, body, stamp), given)
    if not ok:
        raise Rejected(403, "X-HubSpot-Signature-v3 does not match the request")


GENERIC_MAX_AGE_SECONDS = 300


def generic_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Signature-256`` of the generic endpoint: ``sha256=`` + hex HMAC-SHA256 of
    ``"<timestamp>." + body`` (the scheme of the connector's own alert webhooks)."""
    return "sha256=" + hmac_sha256(secret, timestamp.encode("ascii") + b"." + body).hex()


def check_generic(
    secret: str,
    body: bytes,
    header: str | None,
    timestamp: str | None,
    *,
    now: float,
    max_age: float = GENERIC_MAX_AGE_SECONDS,
) -> None:
    """The signature covers the timestamp and the body, and the timestamp must be recent: a
    captured request cannot be sent again later, and its body (which holds the dedup key)
    cannot be changed."""
    given = _require(header, "X-Signature-256").lower()
    stamp = _require(timestamp, "X-Webhook-Timestamp")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise Rejected(401, "X-Webhook-Timestamp must be Unix time in seconds")
    if abs(now - int(stamp)) > max_age:
        raise Rejected(
            401,
            f"X-Webhook-Timestamp is outside the {max_age:.0f} s window: sign each delivery "
            "with the current time (and check the sender's clock)",
        )
    if not given.startswith("sha256="):
        given = "sha256=" + given
    if not same(generic_signature(secret, stamp, body), given):
        raise Rejected(403, 'X-Signature-256 does not match "<X-Webhook-Timestamp>." + body')


def check_bearer(expected: str, authorization: str | None) -> None:
    """``Authorization: Bearer <token>`` for the admin API."""
    if authorization is None or not authorization.strip():
        raise Rejected(401, "missing Authorization: Bearer <admin token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not same(expected, token.strip()):
        raise Rejected(403, "the admin token does not match")
