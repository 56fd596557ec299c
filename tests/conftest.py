"""Shared fixtures: a store on SQLite and on a real PostgreSQL server; a local SMTP server
with STARTTLS for the alert e-mails."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.store import Store
from tests import pg_server
from tests.smtp_sink import SmtpSink, make_certificate

_db_numbers = itertools.count(1)


def pytest_report_header(config: pytest.Config) -> str:
    bindir = pg_server.find_bindir()
    if bindir is None:
        return "postgresql: NO binaries found (initdb/pg_ctl) - PostgreSQL store tests SKIPPED"
    return f"postgresql: real server from {bindir}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg_server.PostgresServer]:
    try:
        server = pg_server.start_server()
    except LookupError as exc:
        pytest.skip(f"PostgreSQL store tests skipped: {exc}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: pg_server.PostgresServer) -> str:
    return postgres_server.create_database(f"crm_roi_test_{next(_db_numbers)}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = make_certificate(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("no openssl binary to make a test certificate")
    return made


@pytest.fixture
def smtp(certificate: tuple[Path, Path]) -> Iterator[SmtpSink]:
    sink = SmtpSink(cert=certificate[0], key=certificate[1], credentials=("alerts", "pw"))
    sink.start()
    yield sink
    sink.stop()
