"""The compute step of alerts: evaluate every rule on the store and record the crossings.

The sync pipeline calls :func:`evaluate_alerts` after attribution (passing its
:class:`~connector.roi.RoiEngine`, so costs are computed once and the health rules can run);
``crm-roi alerts run`` calls it on its own. Delivery is the push step's job
(``sync.alerts.delivery``), which reads what this recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from connector.alerts import log as alert_log
from connector.alerts.rules import AlertSettings, evaluate
from connector.budgets.engine import BudgetEngine
from connector.config import Config
from connector.roi import RoiEngine, Settings
from connector.store import Store

log = logging.getLogger(__name__)


@dataclass
class AlertRun:
    outcome: alert_log.RecordOutcome
    evaluated: int
    engine: BudgetEngine


def budget_engine_for(
    store: Store, config: Config, *, as_of: datetime, roi_engine: RoiEngine | None = None
) -> BudgetEngine:
    """A budget engine with ``[budget_categories]`` from config, sharing ``roi_engine``'s
    costs when there is one."""
    targets = config.budget_categories.targets.as_mapping()
    tolerance = config.budget_categories.tolerance
    if roi_engine is not None:
        return BudgetEngine.from_roi(roi_engine, targets=targets, tolerance=tolerance)
    return BudgetEngine.from_store(
        store, Settings.from_config(config), as_of=as_of, targets=targets, tolerance=tolerance
    )


def evaluate_alerts(
    store: Store,
    config: Config,
    *,
    as_of: datetime,
    roi_engine: RoiEngine | None = None,
    budget_engine: BudgetEngine | None = None,
) -> AlertRun:
    """Evaluate the budget, category and (with ``roi_engine``) health rules and record the
    result; returns what fired, passed and resolved."""
    settings = AlertSettings.from_config(config)
    engine = budget_engine or budget_engine_for(store, config, as_of=as_of, roi_engine=roi_engine)
    report = None
    if roi_engine is not None:
        report = roi_engine.report(model_name=config.attribution.model, by="campaign")
    evaluations, rules = evaluate(
        engine,
        settings,
        report=report,
        roi_settings=roi_engine.settings if roi_engine is not None else None,
    )
    outcome = alert_log.record(store, evaluations, rules, now=as_of)
    log.info(
        "alerts: %d rules evaluated, %d fired, %d passed, %d resolved",
        len(evaluations),
        len(outcome.fired),
        len(outcome.passed),
        len(outcome.resolved),
    )
    return AlertRun(outcome=outcome, evaluated=len(evaluations), engine=engine)
