"""The Flask app of ``crm-roi serve``: ``/webhooks/<provider>``, the admin API, ``/healthz``.

A POST goes through four steps, in this order, and the first that fails answers:

1. the endpoint must be configured (its secret's ``*_env`` key set), else 404;
2. the body must fit ``[webhooks] max_body_bytes``, else 413 (read no further);
3. the platform's proof must hold (signature, key, timestamp window), else 401 (missing)
   or 403 (wrong), and **nothing is stored**;
4. the body must be what the platform sends, else 400 (malformed JSON) or 422, with the
   reason in the answer.

Only then is the event written, with its dedup key and the headers that matter, by
:class:`webhooks.intake.Intake`; the 200 follows the commit. No input makes the app answer
500: every refusal is a 4xx, and a store that cannot take the write answers 503 so the
platform delivers again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from connector.config import Config
from connector.store import Store
from webhooks.admin import admin_blueprint, health_blueprint
from webhooks.intake import Intake, IntakeUnavailable
from webhooks.providers import PROVIDERS
from webhooks.providers.base import InboundRequest
from webhooks.verify import Rejected

log = logging.getLogger(__name__)

# The headers kept with an event: enough to re-check it and to trace a delivery (each
# provider names its own).
KEPT_HEADERS = (
    "Content-Type",
    "User-Agent",
    "X-Forwarded-For",
    "X-Request-Id",
    *dict.fromkeys(h for p in PROVIDERS.values() for h in p.headers),
)
_KEPT_KEYS = tuple(
    (name, "CONTENT_TYPE" if name == "Content-Type" else "HTTP_" + name.upper().replace("-", "_"))
    for name in KEPT_HEADERS
)
_MAX_HEADER = 512


def resolve_secrets(config: Config) -> dict[str, str]:
    """The signing secret of every configured endpoint, by provider name.

    An endpoint is configured when its ``*_env`` key names a variable; a named variable that
    is not set is a configuration error (exit 2 at ``serve``), never a silently open door.
    """
    secrets: dict[str, str] = {}
    for name, provider in PROVIDERS.items():
        section, key = provider.secret
        if getattr(getattr(config, section), f"{key}_env"):
            secrets[name] = config.secret(section, key)
    return secrets


def _handshake_secrets(config: Config, secrets: Mapping[str, str]) -> dict[str, str]:
    """The secret each provider's GET handshake checks: its signing secret, or one of its
    own (Meta's verify token), when its ``*_env`` key names a variable."""
    found: dict[str, str] = {}
    for name, provider in PROVIDERS.items():
        wanted = getattr(provider, "handshake_secret", None)
        if wanted is None:
            continue
        if wanted == provider.secret:
            if name in secrets:
                found[name] = secrets[name]
            continue
        section, key = wanted
        if getattr(getattr(config, section), f"{key}_env"):
            found[name] = config.secret(section, key)
    return found


def admin_token(config: Config) -> str | None:
    if not config.server.admin_token_env:
        return None
    try:
        return config.secret("server", "admin_token")
    except Exception:
        return None


def _printable(value: str) -> str:
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable())
    return value[:_MAX_HEADER]


def _kept(environ: Mapping[str, Any]) -> dict[str, str]:
    kept = {}
    for name, key in _KEPT_KEYS:
        value = environ.get(key)
        if value:
            kept[name] = _printable(value)
    remote = environ.get("REMOTE_ADDR")
    if remote:
        kept["Remote-Addr"] = _printable(remote)
    return kept


def _uri(public_url: str, environ: Mapping[str, Any]) -> str:
    """The URL the platform called: ``[webhooks] public_url`` + path behind a proxy, else
    the scheme and host of the request, with the path and query exactly as sent."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        query = environ.get("QUERY_STRING", "")
        path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/;=,:@!$&'()*+~")
        raw = environ.get("SCRIPT_NAME", "") + path + (f"?{query}" if query else "")
    if public_url:
        return public_url.rstrip("/") + raw
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{raw}"


def _refuse(status: int, reason: str) -> tuple[Response, int]:
    return jsonify(error=reason), status


def create_app(
    config: Config,
    store: Store,
    *,
    intake: Intake | None = None,
    secrets: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """The app for ``config``; ``intake`` (started) is created and started when not given.

    ``secrets`` overrides the resolved endpoint secrets (tests); ``clock`` gives Unix time
    (HubSpot's timestamp window).
    """
    secrets = dict(resolve_secrets(config) if secrets is None else secrets)
    handshake_secrets = _handshake_secrets(config, secrets)
    public_url = config.webhooks.public_url
    if intake is None:
        intake = Intake(store).start()

    # No static route: Flask's default serves ./static of wherever `serve` was started,
    # without a token. What the product ships it serves itself.
    app = Flask(__name__, static_folder=None, template_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.webhooks.max_body_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["crm_roi_intake"] = intake
    app.register_blueprint(health_blueprint(store))
    app.register_blueprint(admin_blueprint(store, admin_token(config)))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return _refuse(exc.code or 400, exc.description or exc.name)

    @app.get("/webhooks/<name>")
    def handshake(name: str) -> Any:
        return _answer_handshake(name, handshake_secrets.get(name))

    @app.post("/webhooks/<name>")
    def receive(name: str) -> Any:
        return _receive(
            name, secrets.get(name), intake, lambda req: _inbound(req, clock, public_url)
        )

    return app


def _answer_handshake(name: str, secret: str | None) -> Any:
    """A platform's subscription check (GET), answered by its provider."""
    provider = PROVIDERS.get(name)
    if provider is None:
        return _refuse(404, f"no webhook endpoint {name!r}; known: {', '.join(PROVIDERS)}")
    answer_to = getattr(provider, "handshake", None)
    if answer_to is None:
        return _refuse(405, f"/webhooks/{name} takes POST only")
    try:
        answer = answer_to(request.args, secret)
    except Rejected as exc:
        log.info("%s handshake refused from %s: %s", name, request.remote_addr, exc.reason)
        return _refuse(exc.status, exc.reason)
    response = Response(answer.body, 200, mimetype=answer.mimetype)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _inbound(req: Any, clock: Callable[[], float], public_url: str) -> InboundRequest:
    body = req.get_data(cache=False)  # 413 beyond MAX_CONTENT_LENGTH
    environ = req.environ
    return InboundRequest(
        method=req.method,
        body=body,
        headers=req.headers,
        now=clock(),
        uri_of=lambda: _uri(public_url, environ),
    )


def _receive(
    name: str,
    secret: str | None,
    intake: Intake,
    inbound_of: Callable[[Any], InboundRequest],
) -> Any:
    """A delivery (POST): verified, split into items, stored durably, then answered."""
    provider = PROVIDERS.get(name)
    if provider is None:
        return _refuse(404, f"no webhook endpoint {name!r}; known: {', '.join(PROVIDERS)}")
    if secret is None:
        section, key = provider.secret
        return _refuse(404, f"the {name} webhook is off: set {section}.{key}_env")
    req = request._get_current_object()  # type: ignore[attr-defined]  # the proxy, once
    inbound = inbound_of(req)
    try:
        provider.verify(inbound, secret)
    except Rejected as exc:
        log.info("%s webhook refused from %s: %s", name, req.remote_addr, exc.reason)
        return _refuse(exc.status, exc.reason)
    try:
        items = provider.items(inbound)
    except Rejected as exc:
        log.info("%s webhook body refused: %s", name, exc.reason)
        return _refuse(exc.status, exc.reason)
    try:
        stored = intake.store_items(name, items, _kept(req.environ))
    except IntakeUnavailable as exc:
        response, status = _refuse(503, str(exc))
        response.headers["Retry-After"] = "30"
        return response, status
    log.debug("%s webhook: %d stored, %d already there", name, stored.created, stored.duplicates)
    answer = {"stored": stored.created, "duplicates": stored.duplicates, "ignored": not items}
    return Response(json.dumps(answer), 200, mimetype="application/json")
