"""Start a throwaway PostgreSQL server from the machine's own binaries.

The store tests run against a real server, not a mock: ON CONFLICT, IS DISTINCT FROM,
NUMERIC and advisory locks behave differently enough from SQLite to need one. The server
lives in a temporary directory, listens only on a Unix socket (no port to collide with),
and runs with fsync off because the data is thrown away.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        real = Path(initdb).resolve().parent
        if (real / "pg_ctl").exists():
            return real
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    candidates += sorted(glob.glob("/usr/local/pgsql/bin")) + sorted(glob.glob("/opt/homebrew/bin"))
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


@dataclass
class PostgresServer:
    bindir: Path
    base: Path
    user: str | None  # the OS user the server runs as, when we are root

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://crm@/{database}?host={self.socket_dir}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def start(self) -> None:
        data = self.base / "data"
        self.socket_dir.mkdir()
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.base, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "crm",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        options = (
            f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(self.base / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if done.returncode:
            log = (self.base / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {log}")

    def stop(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.base / "data"),
            "-m",
            "immediate",
            "-w",
            "stop",
        )
        shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host={self.socket_dir} user=crm dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_server() -> PostgresServer:
    """Start a server; raises LookupError when no binaries exist, RuntimeError on failure."""
    bindir = find_bindir()
    if bindir is None:
        raise LookupError("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
    user = None
    if os.geteuid() == 0:
        # initdb refuses to run as root; the Debian package creates a 'postgres' user.
        for candidate in ("postgres", "nobody"):
            try:
                pwd.getpwnam(candidate)
            except KeyError:
                continue
            user = candidate
            break
        if user is None:
            raise LookupError("running as root and no 'postgres' user to run PostgreSQL as")
    base = Path(tempfile.mkdtemp(prefix="crm-roi-pg-"))
    base.chmod(0o755)
    server = PostgresServer(bindir=bindir, base=base, user=user)
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    return server
