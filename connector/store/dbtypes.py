"""Column types that keep money exact and times in UTC on both SQLite and PostgreSQL.

SQLite has no decimal type: SQLAlchemy's ``Numeric`` stores a REAL there, which would turn
``0.10`` into ``0.1000000000000000055``. Money therefore goes into TEXT on SQLite (as the
canonical decimal string) and into NUMERIC on PostgreSQL. Timestamps are stored as naive
UTC and handed back timezone-aware, so no caller ever compares a local and a UTC time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


def canonical_decimal(value: Decimal) -> str:
    """The one spelling of a Decimal, so equal amounts compare equal as text (1.50 == 1.5)."""
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


class Money(TypeDecorator[Decimal]):
    """An exact decimal: TEXT on SQLite, NUMERIC on PostgreSQL; refuses floats."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be a Decimal, not a float")
        if not isinstance(value, Decimal):
            value = Decimal(value)
        if dialect.name == "postgresql":
            return value
        return canonical_decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned aware (``tzinfo=UTC``)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: attach a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL on SQLite
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)
