"""A local Meta Marketing API with one empty ad account, for tests that need a real
``crm-roi sync`` subprocess to pull something and succeed without the network.

Shapes follow the Graph API docs: ad account fields (/reference/ad-account), the campaigns
edge (``{"data": []}``), async insights (POST ``/act_X/insights`` -> ``report_run_id``, the
AdReportRun's ``async_status``, its ``/insights`` edge)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

ACCOUNT = "act_1"
_ROUTES = {
    ("GET", f"/v26.0/{ACCOUNT}"): {
        "id": ACCOUNT,
        "name": "Test account",
        "currency": "USD",
        "timezone_name": "UTC",
        "account_status": 1,
    },
    ("GET", f"/v26.0/{ACCOUNT}/campaigns"): {"data": []},
    ("POST", f"/v26.0/{ACCOUNT}/insights"): {"report_run_id": "9"},
    ("GET", "/v26.0/9"): {
        "id": "9",
        "async_status": "Job Completed",
        "async_percent_completion": 100,
    },
    ("GET", "/v26.0/9/insights"): {"data": []},
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self, method: str) -> None:
        payload = _ROUTES.get((method, urlsplit(self.path).path))
        status = 200 if payload is not None else 404
        body = json.dumps(payload or {"error": {"message": "Unknown path", "code": 803}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer("POST")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def fake_meta() -> Iterator[str]:
    """Yields the config lines of a ``[meta_ads]`` section pointed at the fake (set
    ``META_TOKEN`` in the environment of the sync)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            f'[meta_ads]\nenabled = true\nad_account_ids = ["{ACCOUNT}"]\n'
            f'base_url = "http://127.0.0.1:{server.server_address[1]}"\napi_version = "v26.0"\n'
        )
    finally:
        server.shutdown()
        server.server_close()
