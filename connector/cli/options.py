"""What the domain commands share: the failure types' constructors, the config, the
as-of option and the ``--format`` option."""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

import click

from connector.budgets.engine import BudgetEngine
from connector.config import Config
from connector.store import Store


def failure(message: str) -> click.ClickException:
    from connector.cli import Failure

    return Failure(message)


def usage(message: str) -> click.ClickException:
    from connector.cli import Usage

    return Usage(message)


def parse_as_of(value: str | None) -> datetime:
    from connector.cli import _parse_as_of

    return _parse_as_of(value)


def read_config(app: Any) -> Config:
    return app.config(resolve_secrets=False)


def budget_engine(store: Store, config: Config, as_of: datetime) -> BudgetEngine:
    from connector.alerts.run import budget_engine_for

    return budget_engine_for(store, config, as_of=as_of)


def who(value: str | None) -> str | None:
    if value:
        return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
AS_OF = click.option(
    "--as-of", default=None, metavar="TIME", help="compute as of this ISO time (default: now)"
)
