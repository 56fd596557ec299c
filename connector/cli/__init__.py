"""The ``crm-roi`` command line (DESIGN section 10).

Exit status: 0 success; 1 failure, with one clear line on stderr; 2 a usage or configuration
error; 3 a sync that finished with some records failed. Every command's ``--help`` says
what it does in a sentence and shows an example.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from connector import model
from connector.config import (
    ATTRIBUTION_MODELS,
    Config,
    ConfigError,
    find_config_path,
    init_config_text,
    load_config,
)
from connector.config.systems import SYSTEMS
from connector.money import CurrencyError, MissingRateError
from connector.periods import Period
from connector.store import Store, StoreError

log = logging.getLogger("crm_roi")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3


class Failure(click.ClickException):
    """A failure the user can act on: one line on stderr, exit 1."""

    exit_code = EXIT_FAILURE

    def show(self, file: Any = None) -> None:
        # one line, whatever the underlying library put in its message
        click.echo(f"crm-roi: error: {' '.join(self.format_message().split())}", err=True)


class Usage(Failure):
    exit_code = EXIT_USAGE


def hoist_config(args: list[str]) -> list[str]:
    """Move ``--config PATH`` typed after the subcommand (``crm-roi sync --config x.toml``,
    as admins do) in front of it, where the group's option is parsed; same meaning, same
    precedence. Given twice with different paths is a usage error rather than a guess."""
    front: list[str] = []
    rest: list[str] = []
    paths: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--config" and i + 1 < len(args):
            paths.append(args[i + 1])
            i += 2
            continue
        if arg.startswith("--config="):
            paths.append(arg.partition("=")[2])
        else:
            rest.append(arg)
        i += 1
    if len(set(paths)) > 1:
        raise click.UsageError(f"--config is given twice: {paths[0]} and {paths[1]}; give one")
    if paths:
        front = ["--config", paths[0]]
    return front + rest


class _Group(click.Group):
    """Turns the connector's own exceptions into the exit codes of the contract, and loads
    the commands of :func:`command_modules` when first asked for a command (lazily, so
    importing any of those modules first cannot hit a half-initialised import cycle)."""

    _plugins_loaded = False

    def _ensure_plugins(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            for module in _command_modules():
                module.register(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._ensure_plugins()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._ensure_plugins()
        return super().list_commands(ctx)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_config(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise Usage(str(exc)) from None
        except (StoreError, MissingRateError, CurrencyError) as exc:
            raise Failure(str(exc)) from None
        except SQLAlchemyError as exc:
            # the store failed mid-command (disk full, locked, server gone): the driver's
            # words, without SQLAlchemy's statement echo and help link
            log.debug("store error", exc_info=True)
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise Failure(
                f"the store (connector.database_url) failed: {reason} (run with -v for details)"
            ) from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            # A bug or an unforeseen outside failure: one line for the user, the traceback
            # for whoever runs with -v.
            log.debug("unexpected error", exc_info=True)
            raise Failure(f"{type(exc).__name__}: {exc} (run with -v for details)") from None


def _setup_logging(verbose: int, quiet: bool) -> None:
    # Warnings by default: the commands print their own results; -v shows the progress
    # lines (sync and serve turn those on themselves, they are their output).
    level = (
        logging.WARNING
        if quiet
        else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # SQL statements only with -vv; their parameters (lead data, keys) never: the store's
    # engine hides them.
    for noisy in ("alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose > 1 else logging.WARNING)


class AppContext:
    """What every command needs: where the config is and how to talk to the user."""

    def __init__(self, config_path: str | None, quiet: bool) -> None:
        self.config_path = config_path
        self.quiet = quiet
        # Off a terminal (CI logs, pipes) rich would wrap at 80 columns and cut every column
        # to an ellipsis; a wide fixed width keeps the tables readable there.
        self.out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 180)
        self.err = Console(stderr=True)

    def config(self, *, resolve_secrets: bool = True) -> Config:
        path = find_config_path(self.config_path, os.environ)
        return load_config(path, os.environ, resolve_secrets=resolve_secrets)

    def progress(self) -> Progress:
        return Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TimeElapsedColumn(),
            console=self.err,
            disable=self.quiet or not self.err.is_terminal,
            transient=True,
        )


pass_app = click.make_pass_decorator(AppContext)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="config file (default: $CRM_ROI_CONFIG, then ./config.toml)",
)
@click.option("-v", "--verbose", count=True, help="more log output")
@click.option("-q", "--quiet", is_flag=True, help="only errors")
@click.version_option(package_name="crm-roi-connector")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Connect marketing spend to CRM revenue: budgets, attribution and ROI.

    \b
    Try it without any account:
      crm-roi demo
    Then with your own systems:
      crm-roi init && crm-roi doctor && crm-roi report --by channel
    """
    _setup_logging(verbose, quiet)
    ctx.obj = AppContext(config_path, quiet)


# ----- init ---------------------------------------------------------------------------------


@main.command()
@click.option("--force", is_flag=True, help="overwrite an existing config file")
@pass_app
def init(app: AppContext, force: bool) -> None:
    """Write a first config.toml (every key commented) and create the store.

    \b
    Example:
      crm-roi init
      crm-roi --config /etc/crm-roi/config.toml init
    """
    path = Path(app.config_path or os.environ.get("CRM_ROI_CONFIG") or "config.toml")
    if path.exists() and not force:
        app.out.print(f"{path} exists; keeping it (use --force to overwrite).")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(init_config_text(), encoding="utf-8")
        app.out.print(
            f"Wrote {path}: every system is off and no budget is set. Enable the systems "
            "you use (enabled = true), export the variables their *_env keys name, "
            "then run `crm-roi doctor`."
        )
    config = load_config(path, os.environ, resolve_secrets=False)
    with Store.open(config.connector.database_url) as store:
        app.out.print(f"Store ready at {store.describe()} (schema {store.current_revision()}).")


# ----- doctor -------------------------------------------------------------------------------


@main.command()
@pass_app
def doctor(app: AppContext) -> None:
    """Check the configuration, the secrets it names and the store, and say what to fix.

    \b
    Example:
      crm-roi doctor
    """
    checks: list[tuple[bool, str]] = []
    path = find_config_path(app.config_path, os.environ)
    config_ok = True
    try:
        config = load_config(path, os.environ, resolve_secrets=True)
        checks.append((True, f"config {path} is valid"))
    except ConfigError as exc:
        config_ok = False
        for problem in [exc, *exc.others]:
            checks.append((False, str(problem)))
        # structure errors end here (exit 2); only missing secrets let the checks go on
        config = load_config(path, os.environ, resolve_secrets=False)
    enabled = ", ".join(config.enabled_sources) or "none"
    checks.append((True, f"enabled sources: {enabled}"))
    try:
        store = Store(config.connector.database_url)
        if not store.exists():  # connecting would create the file
            raise StoreError(
                f"there is no store at {store.describe()} (connector.database_url); "
                "`crm-roi init` or `crm-roi sync` creates it"
            )
        current, head = store.current_revision(), store.head_revision()
        if current == head:
            checks.append((True, f"store {store.describe()} at schema {current}"))
            counts = ", ".join(
                f"{store.count(t):,} {schema_name}"
                for t, schema_name in [
                    (model.Campaign, "campaigns"),
                    (model.Person, "persons"),
                    (model.Opportunity, "opportunities"),
                    (model.AdSpendDay, "ad spend days"),
                ]
            )
            checks.append((True, f"store holds {counts}"))
        else:
            checks.append(
                (
                    False,
                    f"store {store.describe()} is at schema {current or 'none'}, "
                    f"the connector needs {head}: run "
                    "`crm-roi init` to create or upgrade it",
                )
            )
        store.close()
    except Exception as exc:  # doctor reports every failure as a finding
        checks.append((False, f"store: {exc}"))
    if config_ok:
        checks.extend(plugin_doctor_checks(config))
    for ok, text in checks:
        # a passing check may carry a "warning: " finding to act on (it does not fail doctor)
        if ok and text.startswith("warning: "):
            mark, text = "[yellow]WARN[/]", text.removeprefix("warning: ")
        else:
            mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
        # findings quote config ([[mapping]], [attribution.custom]): text, not rich markup
        app.out.print(f"{mark} {escape(text)}", highlight=False)
    if not config_ok:
        raise SystemExit(EXIT_USAGE)
    if not all(ok for ok, _ in checks):
        raise SystemExit(EXIT_FAILURE)


# ----- report -------------------------------------------------------------------------------

_MODELS = list(ATTRIBUTION_MODELS)


def _parse_period(value: str | None) -> Period | None:
    if value is None or value == "lifetime":
        return None
    try:
        return Period.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--period") from None


def _parse_as_of(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or time", param_hint="--as-of"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _engine(store: Store, config: Config, as_of: datetime, progress: Progress):
    from connector.roi import RoiEngine, Settings
    from connector.store.dataset import Dataset

    with progress:
        task = progress.add_task("reading the store", total=1)
        data = Dataset.load(store)
        progress.update(task, completed=1)
    log.info(
        "read %s opportunities, %s touchpoints, %s spend days",
        len(data.opportunities),
        len(data.touchpoints),
        len(data.spend),
    )
    return RoiEngine(data, Settings.from_config(config), as_of=as_of)


@main.command()
@click.option(
    "--by",
    type=click.Choice(["campaign", "channel", "department", "category"]),
    default="campaign",
    show_default=True,
    help="what each row is",
)
@click.option(
    "--model",
    "model_name",
    type=click.Choice(_MODELS),
    default=None,
    help="attribution model (default: [attribution] model)",
)
@click.option(
    "--period", default=None, metavar="P", help="2026-11, 2026-Q4 or 2026 (default: lifetime)"
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--compare-models",
    is_flag=True,
    help="attributed revenue per campaign under every model, side by side",
)
@click.option(
    "--as-of", default=None, metavar="TIME", help="compute as of this ISO time (default: now)"
)
@pass_app
def report(
    app: AppContext,
    by: str,
    model_name: str | None,
    period: str | None,
    fmt: str,
    compare_models: bool,
    as_of: str | None,
) -> None:
    """Print cost, leads, pipeline, revenue, ROI and budget use from the store.

    \b
    Examples:
      crm-roi report --by channel --period 2026-Q4
      crm-roi report --model markov --format json > roi.json
      crm-roi report --compare-models
    """
    from connector.roi import formats as report_format

    config = app.config(resolve_secrets=False)
    chosen_period = _parse_period(period)
    when = _parse_as_of(as_of)
    if (model_name or config.attribution.model) == "custom" and config.attribution.custom is None:
        raise Usage(
            "--model custom needs an [attribution.custom] table in the config, with weights "
            "ft, lc, oc, cw and rest that sum to 1 (see config.example.toml)"
        )
    with Store.open(config.connector.database_url, create=False) as store:
        if store.count(model.Campaign) == 0:
            app.err.print(
                f"The store {store.describe()} holds no campaigns yet: run `crm-roi sync` "
                "first (or `crm-roi demo` to try it with sample data).",
                highlight=False,
                markup=False,
            )
        engine = _engine(store, config, when, app.progress())
    if compare_models:
        campaigns, revenue = engine.compare_models(period=chosen_period)
        if fmt == "json":
            click.echo(
                report_format.comparison_json(
                    [f"{c.source}:{c.external_id}" for c in campaigns],
                    [c.name for c in campaigns],
                    revenue,
                )
            )
        else:
            report_format.render_comparison(
                [c.name for c in campaigns], revenue, app.out, engine.currency
            )
        return
    result = engine.report(
        model_name=model_name or config.attribution.model, by=by, period=chosen_period
    )
    if fmt == "json":
        click.echo(report_format.to_json(result))
    elif fmt == "csv":
        click.echo(report_format.to_csv(result), nl=False)
    else:
        report_format.render_table(result, app.out)


# ----- demo ---------------------------------------------------------------------------------


# Commands and doctor checks that live in other modules register here. Each module has
# ``register(cli: click.Group) -> None`` and may have ``doctor_checks(config) ->
# Iterable[tuple[bool, str]]``. connector/ imports adapters/, sync/ and webhooks/ only here
# and only when the CLI starts, keeping the core free of them (DESIGN section 2).
CORE_COMMAND_MODULES: tuple[str, ...] = (
    "sync.cli",
    "sync.demo_cli",
    "sync.alerts.cli",  # the alert channels' doctor line first, as it always came
    "connector.alerts.cli",
    "connector.budgets.cli",
    "connector.expenses.cli",
)
# then each adapter package's own ``cli`` module (setup-fields, its doctor checks), found
# through the systems table, then the ad platforms' shared commands and the webhooks'
SHARED_COMMAND_MODULES: tuple[str, ...] = ("adapters.ads_cli", "webhooks.cli")


def adapter_command_modules() -> tuple[str, ...]:
    """``<adapter package>.cli`` of every system in the table whose adapter is a package
    (a single-module adapter or one not built yet has none); found without importing it."""
    found = []
    for system in SYSTEMS:
        try:
            spec = importlib.util.find_spec(system.adapter)
        except ModuleNotFoundError:
            spec = None
        if spec is not None and spec.submodule_search_locations is not None:
            found.append(f"{system.adapter}.cli")
    return tuple(found)


def command_modules() -> tuple[str, ...]:
    """The one table of command modules, in the order their commands and doctor lines
    appear."""
    return (*CORE_COMMAND_MODULES, *adapter_command_modules(), *SHARED_COMMAND_MODULES)


def _command_modules() -> list[Any]:
    modules = []
    for name in command_modules():
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # a real missing dependency inside the module
    return modules


def plugin_doctor_checks(config: Config) -> list[tuple[bool, str]]:
    checks: list[tuple[bool, str]] = []
    for module in _command_modules():
        hook = getattr(module, "doctor_checks", None)
        if hook is not None:
            checks.extend(hook(config))
    return checks


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (tests call this instead of a subprocess)."""
    try:
        main.main(args=argv, prog_name="crm-roi", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("crm-roi: aborted", err=True)
        return EXIT_FAILURE
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    return 0
