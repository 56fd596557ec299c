"""``crm-roi demo``: the whole product on a sample world, no account, no network.

The demo world (:mod:`connector.demo`) is put into a local sample CRM
(:mod:`adapters.sample_crm`), and the real pipeline syncs it: pull through the stream
interface, compute attribution, budgets and alerts, push ROI fields and alert tasks back into
the sample CRM. Then the reports are printed from the store the sync filled.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from adapters.sample_crm import SampleCrm, SampleSource, SampleWriter
from connector import model
from connector.cli import AppContext, pass_app
from connector.config import load_config
from connector.periods import Period
from connector.roi import RoiEngine, Settings
from connector.roi import formats as report_format
from connector.store import Store
from connector.store.dataset import Dataset
from sync.cli import StreamProgress
from sync.pipeline import run_sync

log = logging.getLogger(__name__)


def write_demo_config(directory: Path, db: Path) -> Path:
    path = directory / "config.toml"
    path.write_text(
        "# The demo's configuration: only the store, no outside system is enabled.\n"
        "[connector]\n"
        f'database_url = "sqlite:///{db}"\n'
        'reporting_currency = "USD"\n'
        'timezone = "UTC"\n\n'
        "[attribution]\n"
        'model = "w_shaped"\n',
        encoding="utf-8",
    )
    return path


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("crm-roi-demo"),
    show_default=True,
    help="where the demo's store, sample CRM and config go",
)
@click.option("--seed", type=int, default=7, show_default=True, help="same seed, same world")
@click.option("--as-of", default=None, metavar="DATE", help="the demo's today (default: today)")
@pass_app
def demo(app: AppContext, directory: Path, seed: int, as_of: str | None) -> None:
    """Build a realistic sample year of marketing, sync it end to end, print the reports.

    No account and no network: campaigns over every channel, ad spend in USD and EUR, leads,
    opportunities and budgets live in a local sample CRM; the real sync pulls them into a
    SQLite store, computes attribution, budgets and alerts, and writes ROI fields and alert
    tasks back into the sample CRM.

    \b
    Example:
      crm-roi demo
      crm-roi --config crm-roi-demo/config.toml report --by department --period 2026-Q4
    """
    from connector import demo as demo_world
    from connector.budgets import cli as budget_cli

    as_of_day = datetime.fromisoformat(as_of).date() if as_of else datetime.now(UTC).date()
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "demo.db"
    for suffix in ("", "-wal", "-shm", ".sync.lock"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    world = demo_world.build_world(seed=seed, as_of=as_of_day)
    crm = SampleCrm.create(
        directory / "sample-crm.db", world.records, at=world.as_of - timedelta(hours=1)
    )
    config_path = write_demo_config(directory, db)
    config = load_config(config_path, {})
    out = app.out
    with Store.open(f"sqlite:///{db}") as store:
        progress = StreamProgress(app)
        with progress:
            report = run_sync(
                store,
                config,
                now=world.as_of,
                command="demo sync",
                sources=[("demo", lambda: SampleSource(crm))],
                writer=SampleWriter(crm),
                progress=progress,
            )
        engine = RoiEngine(Dataset.load(store), Settings.from_config(config), as_of=world.as_of)
        quarter = Period.parse(f"{as_of_day.year}-Q{(as_of_day.month - 1) // 3 + 1}")
        out.rule("crm-roi demo")
        counts = {t.__name__: world.count(t) for t in model.ENTITY_TYPES}
        out.print(
            f"Built a sample year ending {as_of_day - timedelta(days=1)} in a local sample CRM: "
            f"{counts['Campaign']} campaigns, {counts['AdSpendDay']:,} days of ad spend, "
            f"{counts['Person']:,} leads and contacts, {counts['Touchpoint']:,} touches, "
            f"{counts['Opportunity']} opportunities.\n"
            f"Synced it (run {report.run_id}, {report.status}): pulled "
            f"{sum(s.read for s in report.streams):,} records in "
            f"{sum(report.stage_seconds.values()):.1f} s, wrote ROI fields back to "
            f"{report.written} campaigns and {len(crm.tasks())} alert tasks into the sample CRM.",
            highlight=False,
        )
        report_format.render_table(engine.report(model_name="w_shaped", by="channel"), out)
        report_format.render_table(
            engine.report(model_name="w_shaped", by="channel", period=quarter), out
        )
        report_format.render_table(
            engine.report(model_name="w_shaped", by="campaign"), out, limit=12
        )
        campaigns, revenue = engine.compare_models(
            models=(
                "first_touch",
                "lead_creation",
                "last_touch",
                "linear",
                "w_shaped",
                "markov",
                "shapley",
            )
        )
        report_format.render_comparison(
            [c.name for c in campaigns], revenue, out, engine.currency, limit=8
        )
        command = invocation()
        budget_cli.show_demo(out, store, config_path, engine, quarter.name, command)
    written = crm.campaign_fields()
    sample_id, sample = next(iter(sorted(written.items())), (None, None))
    if sample is not None:
        out.print(
            f"ROI fields now on campaign {sample_id} in the sample CRM: "
            + ", ".join(f"{k}={v}" for k, v in sample.items() if v is not None),
            highlight=False,
        )
    crm.close()
    run = f"{command} --config {shlex.quote(str(config_path))}"
    out.print(
        f"\nStore: {db}\nSample CRM: {directory / 'sample-crm.db'}\n"
        f"Config: {config_path}\nExplore it (from any directory, venv active or not):\n"
        f"  {run} report --by department --period {quarter}\n"
        f"  {run} report --compare-models\n"
        f"  {run} report --model markov --format json\n"
        f"  {run} budget\n"
        f"  {run} alerts --open\n"
        f"  {run} runs",
        highlight=False,
        markup=False,
    )


def invocation(argv0: str | None = None, path: str | None = None) -> str:
    """How to run crm-roi again from a shell: ``crm-roi`` when that name on ``PATH`` is the
    program running now, else the program's absolute path (its venv need not be active)."""
    program = Path(argv0 if argv0 is not None else sys.argv[0])
    if program.name != "crm-roi" or not program.is_file():
        # run from Python (tests, python -c): the script installed beside this interpreter
        program = Path(sys.executable).parent / "crm-roi"
    if not program.is_file():
        return "crm-roi"
    found = shutil.which("crm-roi", path=path)
    if found and Path(found).resolve() == program.resolve():
        return "crm-roi"
    return shlex.quote(str(program.absolute()))


def register(cli: click.Group) -> None:
    cli.add_command(demo)
