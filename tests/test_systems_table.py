"""The outside systems are declared once (connector/config/systems.py); what is derived from the
table agrees with it, and what cannot be derived yet (the config sections, the example file)
is held to it here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from adapters import registry
from connector.cli import command_modules
from connector.config import (
    AdSource,
    Config,
    WebhookCrm,
    _OutsideSystem,
    example_config_text,
    systems,
)

ROOT = Path(__file__).resolve().parents[1]


def test_config_has_one_section_per_system_and_no_other() -> None:
    sections = [
        name
        for name, field in Config.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, _OutsideSystem)
    ]
    assert sections == list(systems.names())
    assert get_args(AdSource) == systems.names("ads")
    assert get_args(WebhookCrm) == systems.names("crm")


def test_the_example_config_documents_every_system_in_table_order() -> None:
    tables = re.findall(r"^\[(\w+)\]", example_config_text(), flags=re.M)
    assert [t for t in tables if t in systems.names()] == list(systems.names())
    assert (ROOT / "config.example.toml").read_text(encoding="utf-8") == example_config_text()


def test_the_registry_and_the_cli_come_from_the_table() -> None:
    assert list(registry.SOURCES) == list(systems.names())
    assert set(registry.WRITERS) == {s.name for s in systems.SYSTEMS if s.writes}
    for system in systems.SYSTEMS:
        assert registry.SOURCES[system.name].startswith(system.adapter + ":")
    # adapter packages bring their own command module; systems not built yet bring none
    assert "adapters.salesforce.cli" in command_modules()
    assert not any("hubspot" in m for m in command_modules())
    assert registry.missing("hubspot") is not None and registry.missing("salesforce") is None
