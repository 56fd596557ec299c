"""The import direction of DESIGN section 2, held by walking every module's imports (``ast``,
so imports inside functions count too): ``connector`` <- ``adapters`` <- ``sync``/``webhooks``,
no adapter imports another adapter (shared adapter infrastructure is not an adapter), and no
adapter writes SQL: the store's interfaces do (the write-back ledger among them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"connector": 0, "adapters": 1, "sync": 2, "webhooks": 2}
# adapters/ modules every adapter may use: the contract, the HTTP behaviour, the registry,
# ad platform day windows, the ad platforms' shared commands
SHARED = {"base", "http", "registry", "ad_windows", "ads_cli"}


def imports(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
            found.extend((f"{node.module}.{a.name}", node.lineno) for a in node.names)
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            out.append((".".join(path.relative_to(ROOT).with_suffix("").parts), path))
    return out


def adapter_of(module: str) -> str | None:
    """``adapters.salesforce.tasks`` -> ``salesforce``; shared modules and the package itself
    belong to no adapter."""
    parts = module.split(".")
    if parts[0] != "adapters" or len(parts) < 2 or parts[1] in SHARED | {"__init__"}:
        return None
    return parts[1]


def violations(module: str, imported: str) -> list[str]:
    own, other = module.split(".")[0], imported.split(".")[0]
    found = []
    if other in LAYERS and LAYERS[other] > LAYERS[own]:
        found.append(f"{module} imports {imported}: {other}/ is above {own}/")
    if own == "adapters" and imported.split(".")[0] == "sqlalchemy":
        found.append(f"{module} imports {imported}: adapters write no SQL (use the store's API)")
    if own == "adapters" and imported in (
        "connector.store.schema",
        "connector.store.schema.schema",
    ):
        found.append(f"{module} imports {imported}: adapters write no SQL (use the store's API)")
    mine, theirs = adapter_of(module), adapter_of(imported)
    if mine and theirs and mine != theirs:
        found.append(f"adapter {mine} imports adapter {theirs} ({imported})")
    return found


def test_no_module_imports_against_the_direction() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {problem}"
        for module, path in modules()
        for imported, line in imports(path)
        for problem in violations(module, imported)
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("module", "imported", "expected"),
    [
        ("connector.budgets.cli", "sync.alerts.delivery", "sync/ is above connector/"),
        ("connector.roi", "adapters.http", "adapters/ is above connector/"),
        ("adapters.meta_ads", "webhooks.fetch", "webhooks/ is above adapters/"),
        ("adapters.hubspot.source", "adapters.salesforce.client", "adapter hubspot imports"),
        ("adapters.salesforce.state", "sqlalchemy", "adapters write no SQL"),
        ("adapters.zoho.writer", "connector.store.schema", "adapters write no SQL"),
    ],
)
def test_the_walk_would_catch_a_back_import(module: str, imported: str, expected: str) -> None:
    assert any(expected in v for v in violations(module, imported))


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("sync.cli", "webhooks.server"),  # serve composes both layers
        ("adapters.google_ads", "adapters.ad_windows"),
        ("adapters.salesforce.tasks", "adapters.salesforce.client"),
        ("webhooks.fetch", "adapters.meta_ads"),
        ("adapters.registry", "connector.config"),
    ],
)
def test_what_the_direction_allows(module: str, imported: str) -> None:
    assert violations(module, imported) == []
