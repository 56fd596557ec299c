"""The admin API: event counts by state, dead letters, replay; and ``/healthz``.

Everything under ``/admin`` needs ``Authorization: Bearer <token>``, the token being the
variable named by ``[server] admin_token_env``, compared in constant time. When that
variable is not set the admin API is off (403 saying so) and the webhooks still work: a
missing admin token must not stop leads from being taken in. ``/healthz`` needs no token
and tells a load balancer whether the store answers.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text

from connector.store import Store
from webhooks import events
from webhooks.verify import Rejected, check_bearer

log = logging.getLogger(__name__)

MAX_REPLAY_IDS = 10_000


def _error(status: int, reason: str) -> tuple[Response, int]:
    return jsonify(error=reason), status


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_REPLAY_IDS:
        raise Rejected(400, f"ids must be an array of at most {MAX_REPLAY_IDS} event ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**62 for i in value):
        raise Rejected(400, "ids must be positive whole numbers")
    return value


def health_blueprint(store: Store) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> Any:
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("health check: the store does not answer (%s)", type(exc).__name__)
            return jsonify(status="unavailable", store="unavailable"), 503
        return jsonify(status="ok", store="ok")

    return bp


def admin_blueprint(store: Store, token: str | None) -> Blueprint:
    bp = Blueprint("admin", __name__, url_prefix="/admin")

    @bp.before_request
    def authenticate() -> Any:
        if token is None:
            return _error(
                403, "the admin API is off: export the variable named by server.admin_token_env"
            )
        try:
            check_bearer(token, request.headers.get("Authorization"))
        except Rejected as exc:
            log.info("admin API refused %s: %s", request.remote_addr, exc.reason)
            response, status = _error(exc.status, exc.reason)
            if status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="crm-roi"'
            return response, status
        return None

    @bp.get("/webhooks")
    def overview() -> Any:
        oldest = events.oldest_pending(store)
        return jsonify(
            counts=events.counts(store),
            oldest_pending_received_at=oldest.isoformat() if oldest else None,
        )

    @bp.get("/webhooks/events")
    def listing() -> Any:
        status = request.args.get("status")
        if status is not None and status not in events.STATES:
            return _error(400, f"status must be one of {', '.join(events.STATES)}")
        limit_text = request.args.get("limit", "100")
        if not limit_text.isdigit() or not 0 < int(limit_text) <= 1000:
            return _error(400, "limit must be a whole number from 1 to 1000")
        found = events.list_events(store, status=status, limit=int(limit_text))
        return jsonify(events=[e.summary() for e in found])

    @bp.get("/webhooks/dead")
    def dead_letters() -> Any:
        found = events.list_events(store, status="dead", limit=1000)
        return jsonify(events=[e.summary() for e in found])

    @bp.post("/webhooks/replay")
    def replay() -> Any:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return _error(400, 'send a JSON object: {"ids": [1, 2]} and/or {"dead": true}')
        try:
            ids = _ids(data.get("ids"))
        except Rejected as exc:
            return _error(exc.status, exc.reason)
        dead = data.get("dead", False)
        if not isinstance(dead, bool):
            return _error(400, "dead must be true or false")
        if not ids and not dead:
            return _error(400, 'nothing to replay: give "ids" or "dead": true')
        return jsonify(replayed=events.replay(store, ids=ids, dead=dead))

    return bp
