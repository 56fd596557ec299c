"""A tiny SMTP server on 127.0.0.1 for the e-mail alert tests: EHLO, STARTTLS (a real TLS
handshake with a throwaway certificate), AUTH PLAIN, MAIL, RCPT, DATA, QUIT.

It records each message with whether TLS was on and who logged in, so a test can prove the
alert left encrypted and authenticated. Not a mail server: one line per command, no
pipelining, no size limits.
"""

from __future__ import annotations

import base64
import shutil
import socketserver
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    data: bytes
    tls: bool
    login: str | None


def make_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 (None when no openssl binary is found)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def _send(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        tls = False
        login: str | None = None
        mail_from = ""
        rcpt: list[str] = []
        self._send("220 sink ESMTP")
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                lines = ["sink"]
                if self.server.context is not None and self.server.offer_starttls and not tls:
                    lines.append("STARTTLS")
                lines.append("AUTH PLAIN")
                for i, text in enumerate(lines):
                    self._send(("250 " if i == len(lines) - 1 else "250-") + text)
            elif verb == "STARTTLS" and self.server.context is not None:
                self._send("220 2.0.0 Ready to start TLS")
                wrapped = self.server.context.wrap_socket(self.connection, server_side=True)
                self.connection = wrapped
                self.rfile = wrapped.makefile("rb")
                self.wfile = wrapped.makefile("wb")
                tls = True
            elif verb == "AUTH":
                payload = [*line.split(" "), "", ""][2]
                user, password = base64.b64decode(payload).split(b"\0")[1:3]
                if (user.decode(), password.decode()) == self.server.credentials:
                    login = user.decode()
                    self._send("235 2.7.0 Authentication successful")
                else:
                    self._send("535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                mail_from = line.split(":", 1)[1].strip().strip("<>").split(">")[0]
                rcpt = []
                self._send("250 OK")
            elif verb == "RCPT":
                rcpt.append(line.split(":", 1)[1].strip().strip("<>"))
                self._send("250 OK")
            elif verb == "DATA":
                self._send("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    chunks.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.received.append(
                    Received(mail_from, list(rcpt), b"".join(chunks), tls, login)
                )
                self._send("250 OK queued")
            elif verb == "QUIT":
                self._send("221 Bye")
                return
            else:
                self._send("250 OK")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext | None, **options: Any) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.offer_starttls: bool = options.get("offer_starttls", True)
        self.credentials: tuple[str, str] | None = options.get("credentials")
        self.received: list[Received] = []


@dataclass
class SmtpSink:
    """Start with :meth:`start`, stop with :meth:`stop`; ``received`` holds the messages."""

    cert: Path | None = None
    key: Path | None = None
    offer_starttls: bool = True
    credentials: tuple[str, str] | None = None
    _server: _Server | None = field(default=None, repr=False)

    def start(self) -> int:
        context = None
        if self.cert is not None and self.key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert, self.key)
        self._server = _Server(
            context, offer_starttls=self.offer_starttls, credentials=self.credentials
        )
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return int(self._server.server_address[1])

    @property
    def received(self) -> list[Received]:
        assert self._server is not None
        return self._server.received

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
