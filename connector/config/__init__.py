"""Reading and checking ``config.toml`` (DESIGN section 9).

Configuration is the one place where a typo costs a whole night of syncing the wrong thing, so
everything here fails early and names the culprit: every table is a pydantic model with
``extra="forbid"`` (an unknown key is an error, with a "did you mean" when one is close), and
every error becomes one :class:`ConfigError` line ``file: key.path[0]: message`` that the CLI
prints before exiting 2 -- before any request leaves the connector.

Secrets never live in the file: a key ending in ``_env`` names the environment variable that
holds the secret. For an enabled outside system (``enabled = true``) the variables it needs are
checked at load time; the values are kept as :class:`pydantic.SecretStr` in a snapshot taken at
load time and handed out one at a time by :meth:`Config.secret`, so they never show up in a
``repr``, a log line or an error message.

Money and exchange rates are quoted strings parsed to :class:`~decimal.Decimal`; a TOML float
is refused because ``1.0850`` has already lost its exactness by the time the parser hands it
over. Ratios (thresholds, shares, targets) may be written as TOML floats: they are converted
through ``str()``, which gives back exactly what was typed.
"""

from __future__ import annotations

import calendar
import difflib
import itertools
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from connector.config import systems
from connector.model import BUDGET_CATEGORIES, CHANNELS
from connector.money import AmountError, entered_amount

__all__ = [
    "ATTRIBUTION_MODELS",
    "CONFIG_ENV_VAR",
    "CURRENCY_CODES",
    "DEFAULT_CONFIG_NAME",
    "AlertsSection",
    "AttributionSection",
    "Budget",
    "BudgetCategoriesSection",
    "CategoryTargets",
    "Config",
    "ConfigError",
    "ConnectorSection",
    "CustomWeights",
    "EmailAlerts",
    "ExpensesSection",
    "FxRate",
    "FxiaokeSection",
    "GoogleAdsSection",
    "HealthSection",
    "HubspotSection",
    "LinkedinAdsSection",
    "MappingRow",
    "MappingRulesSection",
    "MetaAdsSection",
    "SalesforceSection",
    "ScheduleSection",
    "ServerSection",
    "WebhooksSection",
    "ZohoSection",
    "example_config_text",
    "find_config_path",
    "load_config",
    "parse_config",
]

CONFIG_ENV_VAR = "CRM_ROI_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"

AttributionModel = Literal[
    "first_touch",
    "lead_creation",
    "last_touch",
    "linear",
    "time_decay",
    "u_shaped",
    "w_shaped",
    "full_path",
    "custom",
    "markov",
    "shapley",
]
ATTRIBUTION_MODELS: tuple[str, ...] = get_args(AttributionModel)

# the choices of ``ad_source`` and ``[webhooks] crm``, from the systems table
AdSource = Literal[systems.names("ads")]  # type: ignore[valid-type]
WebhookCrm = Literal[systems.names("crm")]  # type: ignore[valid-type]
SalesforceAuth = Literal["client_credentials", "password", "jwt", "session"]

# Active ISO-4217 codes (plus a few recently withdrawn ones that still appear in historical
# rates). A typo such as "UDS" would otherwise pass a three-letter check and only surface as a
# missing exchange rate deep inside a report.
_ISO_4217 = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP
    ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR
    ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
    MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR
    PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF
    XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL
"""
CURRENCY_CODES: frozenset[str] = frozenset(_ISO_4217.split())

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SF_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


# --------------------------------------------------------------------------------------------
# The error


class ConfigError(Exception):
    """A configuration problem, told as one line the CLI can print before exiting 2.

    ``key`` is the dotted/indexed path of the offending key (``budgets[2].amount``), ``path``
    the file as the user gave it. When a file has several problems the first is raised and the
    rest ride along in ``others``, so a caller can show them all at once instead of making the
    user fix and rerun once per mistake.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        key: str | None = None,
        others: Sequence[ConfigError] = (),
    ) -> None:
        # One line, always: the CLI prints str(err) as is.
        self.message = " ".join(message.split())
        self.path = Path(path) if path is not None else None
        self.key = key or None
        self.others: list[ConfigError] = list(others)
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [str(self.path)] if self.path is not None else []
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep path/key/others across pickling (worker processes), which a keyword-only
        # __init__ would otherwise lose.
        return (self.__class__, (self.message,), self.__dict__.copy())

    def all_lines(self) -> list[str]:
        """This error and the ones after it, one line each, in file order."""
        return [str(self), *(str(o) for o in self.others)]


def _fail(message: str, key: str | None = None) -> PydanticCustomError:
    """An error raised from a model validator that points at one of the model's keys.

    A model validator can only fail at the model's own location; ``key`` (a suffix such as
    ``"username_env"`` or ``"[3]"``) is carried in the context and appended to the location
    when the error is turned into a :class:`ConfigError`.
    """
    return PydanticCustomError("config", "{message}", {"message": message, "key": key or ""})


# --------------------------------------------------------------------------------------------
# Value types. Each parser turns what TOML hands over into the stored type, or raises a
# ValueError whose text is the user-facing message.


def _show(value: object) -> str:
    """A short, TOML-flavoured rendering of a bad value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return f"the date-time {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _parse_decimal(value: object, key: str, *, floats_ok: bool) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"expected a number in quotes, got {_show(value)}")
    if isinstance(value, float):
        if not floats_ok:
            raise ValueError(
                "money and rates must be quoted strings so no precision is lost: "
                f'write {key} = "{value!r}"'
            )
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        return Decimal(str(value))
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(
                f'expected a decimal number such as "1250.00", got {_show(value)}'
            ) from None
    else:
        raise ValueError(f"expected a decimal number in quotes, got {_show(value)}")
    if not result.is_finite():
        raise ValueError(f"expected a finite number, got {_show(value)}")
    return result


def _money(value: object, info: ValidationInfo) -> Decimal:
    return _parse_decimal(value, info.field_name or "value", floats_ok=False)


def _ratio(value: object, info: ValidationInfo) -> Decimal:
    return _parse_decimal(value, info.field_name or "value", floats_ok=True)


def _optional_money(value: object, info: ValidationInfo) -> Decimal | None:
    # TOML has no null: an empty string is how the example file says "not set".
    if value is None or value == "":
        return None
    return _money(value, info)


Money = Annotated[Decimal, BeforeValidator(_money)]
"""A money amount or exchange rate: a quoted decimal string (an integer is exact, so it is
accepted too); a TOML float is refused."""
Ratio = Annotated[Decimal, BeforeValidator(_ratio)]
"""A ratio or share: a TOML number or a quoted decimal, kept as an exact Decimal."""


def _positive_decimal(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return value


def _non_negative_decimal(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def _share(value: Decimal) -> Decimal:
    if not 0 <= value <= 1:
        raise ValueError(f"must be between 0 and 1, got {value}")
    return value


PositiveMoney = Annotated[Money, AfterValidator(_positive_decimal)]
NonNegativeMoney = Annotated[Money, AfterValidator(_non_negative_decimal)]
PositiveRatio = Annotated[Ratio, AfterValidator(_positive_decimal)]
NonNegativeRatio = Annotated[Ratio, AfterValidator(_non_negative_decimal)]
Share = Annotated[Ratio, AfterValidator(_share)]


def _optional_non_negative(value: Decimal | None) -> Decimal | None:
    return None if value is None else _non_negative_decimal(value)


OptionalAmount = Annotated[
    Decimal | None, BeforeValidator(_optional_money), AfterValidator(_optional_non_negative)
]
"""An optional money amount, 0 or more; "" (TOML has no null) means "not set"."""


def _env_name(value: str) -> str:
    # The value is never echoed: a user who pasted the secret itself here must not see it
    # printed back to the terminal (or a CI log).
    if value and not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "expected the NAME of an environment variable (letters, digits and _, not "
            "starting with a digit); the secret itself goes in that variable, never in this file"
        )
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
"""The name of the environment variable holding a secret; empty means "not used"."""


def _currency(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError(
            f"expected a 3-letter ISO-4217 currency code in upper case such as 'USD', "
            f"got {_show(value)}"
        )
    if value not in CURRENCY_CODES:
        raise ValueError(f"{value!r} is not an ISO-4217 currency code")
    return value


Currency = Annotated[str, AfterValidator(_currency)]


def _check_url(value: str, *, base: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {_show(value)}")
    if parts.username or parts.password:
        raise ValueError(
            "the URL holds credentials; secrets never go in this file, use the *_env keys"
        )
    # Base URLs are joined with API paths later: without a trailing slash that is a plain
    # concatenation everywhere.
    return value.rstrip("/") if base else value


def _base_url(value: str) -> str:
    return _check_url(value, base=True)


def _url(value: str) -> str:
    return _check_url(value, base=False)


def _optional_url(value: str) -> str:
    return _check_url(value, base=False) if value else value


def _optional_base_url(value: str) -> str:
    return _check_url(value, base=True) if value else value


BaseUrl = Annotated[str, AfterValidator(_base_url)]
Url = Annotated[str, AfterValidator(_url)]
OptionalUrl = Annotated[str, AfterValidator(_optional_url)]
OptionalBaseUrl = Annotated[str, AfterValidator(_optional_base_url)]


def _pattern(regex: str, example: str, what: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"expected {what} such as {example!r}, got {_show(value)}")
        return value

    return AfterValidator(check)


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]


def _google_customer_id(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"expected a 10-digit customer id as a quoted string, got {value}")
    if isinstance(value, str) and not re.fullmatch(r"\d{10}", value):
        raise ValueError(f"expected a 10-digit customer id without dashes, got {_show(value)}")
    return value


GoogleCustomerId = Annotated[str, BeforeValidator(_google_customer_id)]


def _optional_customer_id(value: str) -> str:
    if value and not re.fullmatch(r"\d{10}", value):
        raise ValueError(
            f'expected "" or a 10-digit customer id without dashes, got {_show(value)}'
        )
    return value


def _date_value(value: object) -> object:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date such as 2026-01-01, got {_show(value)}")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f'expected a date such as "2026-01-01", got {_show(value)}') from None
    return value


IsoDate = Annotated[date, BeforeValidator(_date_value)]


# --------------------------------------------------------------------------------------------
# Sections


class _Model(BaseModel):
    """Every table: unknown keys refused, no type coercion, immutable once loaded.

    ``strict`` matters: without it ``port = "8080"`` or ``enabled = "yes"`` would be quietly
    converted, and the file would no longer say exactly what the connector does.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


class ConnectorSection(_Model):
    """``[connector]``: the store, the reporting currency and the clock reports are cut by."""

    database_url: str = "sqlite:///crm-roi.db"
    reporting_currency: Currency = "USD"
    timezone: str = "UTC"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
            return value
        if scheme == "postgresql+psycopg":
            return value
        if scheme in ("postgresql", "postgres", "postgresql+psycopg2"):
            raise ValueError(
                f"use the postgresql+psycopg:// scheme (the installed driver), got {scheme}://"
            )
        # Only the scheme is echoed: the rest may hold a host name or user the admin would
        # rather not see in a CI log.
        raise ValueError(
            "expected sqlite:///path/to/file.db or postgresql+psycopg://user@host/db, got "
            + (f"a {scheme}:// URL" if scheme else _show(value))
        )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"expected an IANA time zone name such as 'Europe/Berlin' or 'UTC', "
                f"got {_show(value)}"
            ) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def database_url_for_display(self) -> str:
        """``database_url`` with any password replaced by ``***``, for logs and messages.

        PGPASSWORD or ~/.pgpass keep the password out of the file; a password written in the
        URL still works, but must never be printed.
        """
        return _mask_password(self.database_url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, _mask_password(value) if name == "database_url" else value

    @property
    def tzinfo(self) -> ZoneInfo:
        """The reporting time zone (days, periods, close dates and the cron schedule)."""
        return ZoneInfo(self.timezone)


class CustomWeights(_Model):
    """``[attribution.custom]``: shares of FT, LC, OC, CW and the rest for ``model = "custom"``."""

    ft: NonNegativeRatio = Decimal(0)
    lc: NonNegativeRatio = Decimal(0)
    oc: NonNegativeRatio = Decimal(0)
    cw: NonNegativeRatio = Decimal(0)
    rest: NonNegativeRatio = Decimal(0)

    @model_validator(mode="after")
    def _check_sum(self) -> Self:
        total = self.ft + self.lc + self.oc + self.cw + self.rest
        if total != 1:
            raise _fail(f"the weights of [attribution.custom] must sum to 1, got {total}")
        if self.cw == 1:
            # Open and lost opportunities have no CW touch: they would get no credit at all.
            raise _fail(
                "the weights of [attribution.custom] give everything to cw: open and lost "
                "opportunities would get no credit; give a share to ft, lc, oc or rest"
            )
        return self

    def as_mapping(self) -> dict[str, Decimal]:
        """The weights in the form ``connector.attribution.rules.rule_credits`` takes."""
        return {"ft": self.ft, "lc": self.lc, "oc": self.oc, "cw": self.cw, "rest": self.rest}


class AttributionSection(_Model):
    """``[attribution]``: which model is written back, and the journey window (DESIGN 4)."""

    model: AttributionModel = "w_shaped"
    lookback_days: int = Field(default=365, ge=0)
    time_decay_half_life_days: float = Field(default=7.0, gt=0, allow_inf_nan=False)
    responded_only: bool = True
    markov_level: Literal["campaign", "channel"] = "campaign"
    custom: CustomWeights | None = None

    @model_validator(mode="after")
    def _custom_needs_weights(self) -> Self:
        if self.model == "custom" and self.custom is None:
            raise _fail(
                "model = 'custom' needs an [attribution.custom] table with weights "
                "ft, lc, oc, cw and rest that sum to 1",
                "custom",
            )
        return self


class _OutsideSystem(_Model):
    """An outside system's table: off unless ``enabled = true``.

    ``REQUIRED_ENV`` lists the ``*_env`` keys an enabled section cannot do without (they must
    not be empty); ``IDS_FIELD`` names the list of accounts that must not be empty either.
    """

    REQUIRED_ENV: ClassVar[tuple[str, ...]] = ()
    IDS_FIELD: ClassVar[str | None] = None
    MAY_BE_EMPTY: ClassVar[frozenset[str]] = frozenset()

    enabled: bool = False

    def secret_keys(self) -> list[str]:
        """The ``*_env`` keys whose variables must be set while this section is enabled."""
        return [
            name
            for name in type(self).model_fields
            if name.endswith("_env") and getattr(self, name)
        ]

    @model_validator(mode="after")
    def _check_enabled(self) -> Self:
        if not self.enabled:
            return self
        for name in self.REQUIRED_ENV:
            if not getattr(self, name):
                raise _fail(
                    "must name the environment variable holding the secret while this "
                    "section is enabled",
                    name,
                )
        if self.IDS_FIELD and not getattr(self, self.IDS_FIELD):
            raise _fail(
                "must list at least one account while this section is enabled", self.IDS_FIELD
            )
        return self


def _sf_field_name(value: str) -> str:
    if value and not _SF_API_NAME.fullmatch(value):
        raise ValueError(
            f"expected a Salesforce field API name such as 'Ad_Campaign_Id__c', got {_show(value)}"
        )
    return value


SfField = Annotated[str, AfterValidator(_sf_field_name)]


class CampaignRule(_Model):
    """``[[salesforce.campaign_rules]]``: department and/or budget category of the campaigns
    whose ``Type`` is ``type`` or whose name matches ``name_regex``, where the campaign's own
    field (``department_field``, ``category_field``) is empty. The first matching rule that
    sets a value wins."""

    type: str = ""
    name_regex: str = ""
    department: str = ""
    category: Literal["", "strategic", "growth", "retention"] = ""

    @field_validator("name_regex")
    @classmethod
    def _check_regex(cls, value: str) -> str:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if not (self.type or self.name_regex):
            raise _fail("a campaign rule needs a type or a name_regex to match")
        if not (self.department or self.category):
            raise _fail("a campaign rule needs a department or a category to give")
        return self

    def matches(self, campaign_type: str | None, name: str | None) -> bool:
        if self.type and (campaign_type or "").casefold() != self.type.casefold():
            return False
        return not self.name_regex or re.search(self.name_regex, name or "") is not None


_SF_AUTH_ENV: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "client_credentials": ("client_id_env", "client_secret_env"),
        "password": (
            "client_id_env",
            "client_secret_env",
            "username_env",
            "password_env",
            "security_token_env",
        ),
        "jwt": ("client_id_env", "username_env"),
        "session": ("session_id_env",),
    }
)


class SalesforceSection(_OutsideSystem):
    """``[salesforce]``. Which secrets are needed depends on ``auth``; only those are checked."""

    MAY_BE_EMPTY: ClassVar[frozenset[str]] = frozenset({"security_token_env"})

    instance_url: OptionalBaseUrl = ""
    login_url: BaseUrl = "https://login.salesforce.com"
    auth: SalesforceAuth = "client_credentials"
    client_id_env: EnvName = "SF_CLIENT_ID"
    client_secret_env: EnvName = "SF_CLIENT_SECRET"
    username_env: EnvName = "SF_USERNAME"
    password_env: EnvName = "SF_PASSWORD"
    security_token_env: EnvName = "SF_SECURITY_TOKEN"
    jwt_private_key_file: str = ""
    session_id_env: EnvName = "SF_SESSION_ID"
    api_version: Annotated[str, _pattern(r"\d{2,3}\.0", "62.0", "an API version")] = "62.0"
    ad_campaign_id_field: Annotated[str, AfterValidator(_sf_field_name)] = "Ad_Campaign_Id__c"
    responded_field: Annotated[str, AfterValidator(_non_empty), AfterValidator(_sf_field_name)] = (
        "HasResponded"
    )
    quota_stop_share: Share = Decimal("0.5")
    timeout_seconds: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    department_field: SfField = ""
    category_field: SfField = ""
    campaign_rules: list[CampaignRule] = []
    mql_statuses: list[NonEmptyStr] = []
    sql_statuses: list[NonEmptyStr] = []
    mql_date_field: SfField = ""
    sql_date_field: SfField = ""

    @field_validator("jwt_private_key_file")
    @classmethod
    def _anchor_key_file(cls, value: str, info: ValidationInfo) -> str:
        # A relative key path means "next to config.toml", not "wherever cron started us".
        base = (info.context or {}).get("base_dir")
        if value and base is not None and not Path(value).expanduser().is_absolute():
            return str(Path(base) / value)
        return str(Path(value).expanduser()) if value else value

    @field_validator("quota_stop_share")
    @classmethod
    def _positive_share(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError(f"must be greater than 0 and at most 1, got {value}")
        return value

    def secret_keys(self) -> list[str]:
        return list(_SF_AUTH_ENV[self.auth])

    @model_validator(mode="after")
    def _check_auth(self) -> Self:
        if not self.enabled:
            return self
        for name in _SF_AUTH_ENV[self.auth]:
            if not getattr(self, name):
                raise _fail(
                    f"auth = '{self.auth}' needs {name} (the name of the environment variable "
                    "holding it)",
                    name,
                )
        if self.auth in ("client_credentials", "session") and not self.instance_url:
            raise _fail(
                f"auth = '{self.auth}' needs instance_url, your My Domain URL such as "
                "'https://acme.my.salesforce.com'",
                "instance_url",
            )
        if self.auth == "jwt" and not self.jwt_private_key_file:
            raise _fail(
                "auth = 'jwt' needs the path of the connected app's private key (PEM)",
                "jwt_private_key_file",
            )
        return self


class HubspotSection(_OutsideSystem):
    """``[hubspot]``: a private app's access token."""

    REQUIRED_ENV: ClassVar[tuple[str, ...]] = ("access_token_env",)

    access_token_env: EnvName = "HUBSPOT_TOKEN"
    base_url: BaseUrl = "https://api.hubapi.com"
    ad_campaign_id_property: str = "ad_campaign_id"


class ZohoSection(_OutsideSystem):
    """``[zoho]``: a self-client refresh token; URLs differ per data centre (.com, .eu, ...)."""

    REQUIRED_ENV: ClassVar[tuple[str, ...]] = (
        "client_id_env",
        "client_secret_env",
        "refresh_token_env",
    )

    accounts_url: BaseUrl = "https://accounts.zoho.com"
    api_domain: BaseUrl = "https://www.zohoapis.com"
    client_id_env: EnvName = "ZOHO_CLIENT_ID"
    client_secret_env: EnvName = "ZOHO_CLIENT_SECRET"
    refresh_token_env: EnvName = "ZOHO_REFRESH_TOKEN"


class FxiaokeSection(_OutsideSystem):
    """``[fxiaoke]``: app id, secret and the enterprise's permanent code."""

    REQUIRED_ENV: ClassVar[tuple[str, ...]] = (
        "app_id_env",
        "app_secret_env",
        "permanent_code_env",
    )

    base_url: BaseUrl = "https://open.fxiaoke.com"
    app_id_env: EnvName = "FXIAOKE_APP_ID"
    app_secret_env: EnvName = "FXIAOKE_APP_SECRET"
    permanent_code_env: EnvName = "FXIAOKE_PERMANENT_CODE"
    corp_id_env: EnvName = ""


def _days(default: int, *, minimum: int = 0) -> Any:
    return Field(default=default, ge=minimum)


class GoogleAdsSection(_OutsideSystem):
    """``[google_ads]``: OAuth refresh token + developer token, one or more customer ids."""

    REQUIRED_ENV: ClassVar[tuple[str, ...]] = (
        "developer_token_env",
        "client_id_env",
        "client_secret_env",
        "refresh_token_env",
    )
    IDS_FIELD: ClassVar[str | None] = "customer_ids"

    customer_ids: list[GoogleCustomerId] = []
    developer_token_env: EnvName = "GADS_DEV_TOKEN"
    client_id_env: EnvName = "GADS_CLIENT_ID"
    client_secret_env: EnvName = "GADS_CLIENT_SECRET"
    refresh_token_env: EnvName = "GADS_REFRESH_TOKEN"
    login_customer_id: Annotated[str, AfterValidator(_optional_customer_id)] = ""
    webhook_key_env: EnvName = ""
    base_url: BaseUrl = "https://googleads.googleapis.com"
    token_url: Url = "https://oauth2.googleapis.com/token"
    api_version: Annotated[str, _pattern(r"v\d+", "v26", "an API version")] = "v26"
    lookback_days: int = _days(30)
    history_days: int = _days(400, minimum=1)


class MetaAdsSection(_OutsideSystem):
    """``[meta_ads]``: a system user's token for one or more ``act_`` ad accounts."""

    REQUIRED_ENV: ClassVar[tuple[str, ...]] = ("access_token_env",)
    IDS_FIELD: ClassVar[str | None] = "ad_account_ids"

    ad_account_ids: list[
        Annotated[str, _pattern(r"act_\d+", "act_1234567890", "an ad account id")]
    ] = []
    api_version: Annotated[str, _pattern(r"v\d+\.\d+", "v26.0", "an API version")] = "v26.0"
    access_token_env: EnvName = "META_TOKEN"
    app_secret_env: EnvName = ""
    verify_token_env: EnvName = ""
    base_url: BaseUrl = "https://graph.facebook.com"
    lookback_days: int = _days(28)
    history_days: int = _days(400, minimum=1)
    conversion_action_types: list[NonEmptyStr] = ["lead"]


class LinkedinAdsSection(_OutsideSystem):
    """``[linkedin_ads]``: a member token with rw_ads/r_ads_reporting for the ad accounts."""

    REQUIRED_ENV: ClassVar[tuple[str, ...]] = ("access_token_env",)
    IDS_FIELD: ClassVar[str | None] = "account_ids"

    account_ids: list[Annotated[str, _pattern(r"\d+", "5123456", "a numeric ad account id")]] = []
    access_token_env: EnvName = "LINKEDIN_TOKEN"
    base_url: BaseUrl = "https://api.linkedin.com"
    api_version: Annotated[
        str,
        _pattern(r"20\d\d(0[1-9]|1[0-2])(\.\d\d)?", "202607", "a YYYYMM version"),
    ] = "202607"  # 202511 was sunset on 2026-11-16; LinkedIn keeps a version about a year
    lookback_days: int = _days(7)
    history_days: int = _days(400, minimum=1)
    webhook_secret_env: EnvName = ""


class MappingRow(_Model):
    """One ``[[mapping]]`` row: this ad campaign's spend and leads belong to that CRM campaign."""

    ad_source: AdSource
    ad_campaign_id: NonEmptyStr
    crm_campaign_id: NonEmptyStr


class MappingRulesSection(_Model):
    """``[mapping_rules]``: the naming rule, the last resort of DESIGN section 6."""

    name_regex: str = ""

    @field_validator("name_regex")
    @classmethod
    def _check_regex(cls, value: str) -> str:
        if not value:
            return value
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
        if "crm" not in compiled.groupindex:
            raise ValueError("needs a named group (?P<crm>...) capturing the CRM campaign name")
        return value

    @property
    def pattern(self) -> re.Pattern[str] | None:
        """The compiled rule, or None when no naming rule is configured."""
        return re.compile(self.name_regex) if self.name_regex else None


class FxRate(_Model):
    """``[[fx_rates]]``: from ``start_date`` on, 1 ``currency`` = ``rate`` reporting currency."""

    currency: Currency
    start_date: IsoDate
    rate: PositiveMoney


def _scope(value: str) -> str:
    if value == "total":
        return value
    kind, sep, name = value.partition(":")
    if not sep or kind not in ("campaign", "channel", "department", "category"):
        raise ValueError(
            "expected 'campaign:<id>', 'channel:<name>', 'department:<name>', "
            f"'category:<name>' or 'total', got {_show(value)}"
        )
    if not name.strip():
        raise ValueError(f"names no {kind} after '{kind}:'")
    allowed = {"channel": CHANNELS, "category": BUDGET_CATEGORIES}.get(kind)
    if allowed is not None and name not in allowed:
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = (
            f"did you mean '{kind}:{close[0]}'?"
            if close
            else "expected one of " + ", ".join(allowed)
        )
        raise ValueError(f"unknown {kind} {name!r}; {hint}")
    return value


def _period(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # period = 2026 is unambiguous
    if isinstance(value, str) and not re.fullmatch(r"\d{4}(-(0[1-9]|1[0-2])|-Q[1-4])?", value):
        raise ValueError(
            f"expected a month '2026-11', a quarter '2026-Q4' or a year '2026', got {_show(value)}"
        )
    return value


def _period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a validated period ('2026', '2026-Q4' or '2026-11')."""
    year = int(period[:4])
    if len(period) == 4:
        first, last = 1, 12
    elif period[5] == "Q":
        first, last = 3 * int(period[6]) - 2, 3 * int(period[6])
    else:
        first = last = int(period[5:])
    return date(year, first, 1), date(year, last, calendar.monthrange(year, last)[1])


class Budget(_Model):
    """``[[budgets]]``: one budget for a scope and period. ``currency`` defaults to the
    reporting currency."""

    scope: Annotated[str, AfterValidator(_scope)]
    period: Annotated[str, BeforeValidator(_period)]
    amount: NonNegativeMoney
    currency: Currency

    @model_validator(mode="after")
    def _amount_fits_its_currency(self) -> Self:
        try:
            entered_amount(self.amount, self.currency)
        except AmountError as exc:
            raise _fail(str(exc), "amount") from None
        return self

    @property
    def scope_kind(self) -> str:
        """``campaign``, ``channel``, ``department``, ``category`` or ``total``."""
        return self.scope.partition(":")[0]

    @property
    def scope_name(self) -> str:
        """What follows the colon (a campaign id, channel, ...); empty for ``total``."""
        return self.scope.partition(":")[2]

    @property
    def start(self) -> date:
        """First day of the period."""
        return _period_bounds(self.period)[0]

    @property
    def end(self) -> date:
        """Last day of the period (inclusive)."""
        return _period_bounds(self.period)[1]


class CategoryTargets(_Model):
    """Target shares of the total budget per category; they must sum to 1."""

    strategic: Share = Decimal("0.20")
    growth: Share = Decimal("0.50")
    retention: Share = Decimal("0.30")

    @model_validator(mode="after")
    def _check_sum(self) -> Self:
        total = self.strategic + self.growth + self.retention
        if total != 1:
            raise _fail(f"the targets of [budget_categories] must sum to 1, got {total}")
        return self

    def as_mapping(self) -> dict[str, Decimal]:
        return {"strategic": self.strategic, "growth": self.growth, "retention": self.retention}


class BudgetCategoriesSection(_Model):
    """``[budget_categories]``: a category drifting from its target share raises an alert."""

    targets: CategoryTargets = Field(default_factory=CategoryTargets)
    tolerance: Share = Decimal("0.05")


def _address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value):
        raise ValueError(f"expected an e-mail address, got {_show(value)}")
    return value


def _optional_address(value: str) -> str:
    return _address(value) if value else value


Address = Annotated[str, AfterValidator(_address)]


class EmailAlerts(_Model):
    """``[alerts.email]``: SMTP delivery; off while ``smtp_host`` is empty."""

    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username_env: EnvName = ""
    password_env: EnvName = ""
    from_addr: Annotated[str, AfterValidator(_optional_address)] = ""
    to_addrs: list[Address] = []

    @model_validator(mode="after")
    def _complete_when_on(self) -> Self:
        if self.smtp_host and not self.from_addr:
            raise _fail("is needed when smtp_host is set", "from_addr")
        if self.smtp_host and not self.to_addrs:
            raise _fail("must list at least one address when smtp_host is set", "to_addrs")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.smtp_host)


class AlertsSection(_Model):
    """``[alerts]``: budget thresholds and where alerts are delivered (DESIGN section 5)."""

    thresholds: list[PositiveRatio] = [Decimal("0.5"), Decimal("0.8"), Decimal("1.0")]
    forecast_over_budget: bool = True
    under_pacing: NonNegativeRatio = Decimal("0.5")
    language: Literal["en", "zh-CN"] = "en"
    slack_webhook_url_env: EnvName = ""
    email: EmailAlerts = Field(default_factory=EmailAlerts)
    webhook_url: OptionalUrl = ""
    webhook_secret_env: EnvName = ""
    crm_tasks: bool = True
    health: bool = True
    min_days_elapsed: int = Field(default=7, ge=0)
    grace_days: int = Field(default=30, ge=0)

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, value: list[Decimal]) -> list[Decimal]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            shown = ", ".join(str(v) for v in value)
            raise ValueError(f"must be in ascending order without repeats, got [{shown}]")
        return value


class HealthSection(_Model):
    """``[health]``: the health rules (DESIGN section 5) and the LTV inputs."""

    roas_min: NonNegativeRatio = Decimal("1")
    mql_to_sql_min: Share = Decimal("0.30")
    ltv_to_cac_min: NonNegativeRatio = Decimal("3")
    sales_cycle_days_max: int | None = Field(default=None, ge=0)
    cpl_max: OptionalAmount = None
    avg_first_year_revenue: OptionalAmount = None
    gross_margin: Share = Decimal("1")
    expected_years: PositiveRatio = Decimal("1")

    @field_validator("sales_cycle_days_max")
    @classmethod
    def _zero_is_off(cls, value: int | None) -> int | None:
        # TOML has no null; 0 is how the example file says "no rule".
        return value or None

    @property
    def ltv(self) -> Decimal | None:
        """LTV from config (first-year revenue x gross margin x years), if configured."""
        if self.avg_first_year_revenue is None:
            return None
        return self.avg_first_year_revenue * self.gross_margin * self.expected_years


class ExpensesSection(_Model):
    """``[expenses]``: approval rules for non-ad costs."""

    auto_approve_under: NonNegativeMoney = Decimal("0")
    auto_approve_under_scopes: dict[str, NonNegativeMoney] = {}
    require_approver_over: OptionalAmount = None
    approvers: list[NonEmptyStr] = []
    budget_lock: bool = True
    requester_may_approve: bool = False

    @field_validator("auto_approve_under_scopes")
    @classmethod
    def _scoped_limits(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for scope in value:
            try:
                _scope(scope)
            except ValueError as exc:
                raise ValueError(f"key {scope!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _auto_below_approver_limit(self) -> Self:
        limit = self.require_approver_over
        if limit is None:
            return self
        for key, value in [
            ("auto_approve_under", self.auto_approve_under),
            *(
                (f"auto_approve_under_scopes[{scope!r}]", v)
                for scope, v in self.auto_approve_under_scopes.items()
            ),
        ]:
            if value > limit:
                raise _fail(
                    f"{key} ({value}) is above require_approver_over ({limit}): expenses "
                    "needing an approver would be approved automatically",
                    key.partition("[")[0],
                )
        return self


_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)


def _cron_number(token: str, field: tuple[str, int, int, tuple[str, ...]], text: str) -> int:
    what, low, high, names = field
    if token.lower() in names:
        return names.index(token.lower()) + (0 if what == "day of week" else 1)
    if not token.isdigit():
        raise ValueError(f"{what} field {text!r}: {token!r} is not a number")
    n = int(token)
    if not low <= n <= high:
        raise ValueError(f"{what} field {text!r}: {n} is outside {low}-{high}")
    return n


def _cron(value: str) -> str:
    """Check a 5-field cron expression without pulling in a cron library.

    Each field is a comma list of ``*``, ``N`` or ``N-M``, each optionally ``/STEP``; months
    and weekdays may be named (``jan``, ``mon``).
    """
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            "expected 5 cron fields (minute hour day-of-month month day-of-week) such as "
            f"'*/30 * * * *', got {len(fields)} in {_show(value)}"
        )
    for text, field in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            body, slash, step = item.partition("/")
            if slash and (not step.isdigit() or int(step) == 0):
                raise ValueError(f"{field[0]} field {text!r}: step {step!r} must be a number > 0")
            if body == "*":
                continue
            first, dash, last = body.partition("-")
            low = _cron_number(first, field, text)
            if dash and _cron_number(last, field, text) < low:
                raise ValueError(f"{field[0]} field {text!r}: range {body!r} runs backwards")
    return value


class ScheduleSection(_Model):
    """``[schedule]``: when ``crm-roi serve`` runs the sync."""

    sync: Annotated[str, AfterValidator(_cron)] = "*/30 * * * *"
    enabled: bool = True


class WebhooksSection(_Model):
    """``[webhooks]``: where webhook leads go and how inbound requests are bounded."""

    crm: WebhookCrm = "salesforce"
    lead_source: NonEmptyStr = "Paid Lead Form"
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    max_attempts: int = Field(default=8, ge=1)
    generic_secret_env: EnvName = ""
    hubspot_client_secret_env: EnvName = ""
    public_url: OptionalBaseUrl = ""
    process_test_leads: bool = False
    durable_intake: bool = True
    intake_timeout_seconds: int = Field(default=10, ge=1, le=120)


class ServerSection(_Model):
    """``[server]``: the Flask app of ``crm-roi serve``."""

    host: NonEmptyStr = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    admin_token_env: EnvName = "CRM_ROI_ADMIN_TOKEN"
    workers: int = Field(default=1, ge=1)
    threads: int = Field(default=16, ge=1, le=256)
    request_timeout_seconds: int = Field(default=10, ge=1, le=300)
    max_connections_per_address: int = Field(default=32, ge=0)


# --------------------------------------------------------------------------------------------
# The whole file


_OUTSIDE_SYSTEMS: tuple[str, ...] = systems.names()
_CRMS: tuple[str, ...] = systems.names("crm")
_AD_SOURCES: tuple[str, ...] = systems.names("ads")


def _duplicates(keys: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, int]]:
    """(index, index of the first row with the same key) for each repeated key."""
    first: dict[tuple[Any, ...], int] = {}
    for i, key in enumerate(keys):
        if key in first:
            yield i, first[key]
        else:
            first[key] = i


class Config(_Model):
    """A loaded, checked ``config.toml``.

    Sections are attributes named as in the file (``config.google_ads.customer_ids``). Secret
    values are not attributes: ask :meth:`secret` for them where they are used.
    """

    connector: ConnectorSection
    attribution: AttributionSection = Field(default_factory=AttributionSection)
    salesforce: SalesforceSection = Field(default_factory=SalesforceSection)
    hubspot: HubspotSection = Field(default_factory=HubspotSection)
    zoho: ZohoSection = Field(default_factory=ZohoSection)
    fxiaoke: FxiaokeSection = Field(default_factory=FxiaokeSection)
    google_ads: GoogleAdsSection = Field(default_factory=GoogleAdsSection)
    meta_ads: MetaAdsSection = Field(default_factory=MetaAdsSection)
    linkedin_ads: LinkedinAdsSection = Field(default_factory=LinkedinAdsSection)
    mapping: list[MappingRow] = []
    mapping_rules: MappingRulesSection = Field(default_factory=MappingRulesSection)
    fx_rates: list[FxRate] = []
    budgets: list[Budget] = []
    budget_categories: BudgetCategoriesSection = Field(default_factory=BudgetCategoriesSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    health: HealthSection = Field(default_factory=HealthSection)
    expenses: ExpensesSection = Field(default_factory=ExpensesSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    webhooks: WebhooksSection = Field(default_factory=WebhooksSection)
    server: ServerSection = Field(default_factory=ServerSection)

    _path: Path | None = PrivateAttr(default=None)
    _secrets: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _budget_currency_default(cls, data: object) -> object:
        # A budget without a currency is in the reporting currency; filling it in here keeps
        # ``Budget.currency`` always set for the code that reads it.
        if not isinstance(data, dict) or not isinstance(data.get("budgets"), list):
            return data
        connector = data.get("connector")
        currency = (
            connector.get("reporting_currency", "USD") if isinstance(connector, dict) else "USD"
        )
        if not isinstance(currency, str):
            return data  # the [connector] error is the one to report
        budgets = [
            {**row, "currency": currency}
            if isinstance(row, dict) and "currency" not in row
            else row
            for row in data["budgets"]
        ]
        return {**data, "budgets": budgets}

    @field_validator("mapping")
    @classmethod
    def _unique_mapping(cls, rows: list[MappingRow]) -> list[MappingRow]:
        for i, j in _duplicates([(r.ad_source, r.ad_campaign_id) for r in rows]):
            raise _fail(
                f"{rows[i].ad_source} campaign {rows[i].ad_campaign_id!r} is already mapped "
                f"by mapping[{j}]",
                f"[{i}].ad_campaign_id",
            )
        return rows

    @field_validator("fx_rates")
    @classmethod
    def _unique_rates(cls, rows: list[FxRate]) -> list[FxRate]:
        for i, j in _duplicates([(r.currency, r.start_date) for r in rows]):
            raise _fail(
                f"a second rate for {rows[i].currency} from {rows[i].start_date} "
                f"(the first is fx_rates[{j}])",
                f"[{i}]",
            )
        return rows

    @field_validator("budgets")
    @classmethod
    def _unique_budgets(cls, rows: list[Budget]) -> list[Budget]:
        for i, j in _duplicates([(r.scope, r.period) for r in rows]):
            raise _fail(
                f"duplicate budget for scope {rows[i].scope!r} and period {rows[i].period!r} "
                f"(the first is budgets[{j}])",
                f"[{i}]",
            )
        return rows

    @property
    def path(self) -> Path | None:
        """The file this configuration was read from (None when built from a mapping)."""
        return self._path

    @property
    def enabled_sources(self) -> tuple[str, ...]:
        """Names of the outside systems with ``enabled = true``, CRMs first."""
        return tuple(name for name in _OUTSIDE_SYSTEMS if getattr(self, name).enabled)

    @property
    def enabled_crms(self) -> tuple[str, ...]:
        return tuple(name for name in _CRMS if getattr(self, name).enabled)

    @property
    def enabled_ad_sources(self) -> tuple[str, ...]:
        return tuple(name for name in _AD_SOURCES if getattr(self, name).enabled)

    def secret(self, section: str, name: str) -> str:
        """The secret held by the variable that ``<section>.<name>_env`` names.

        ``section`` may be dotted (``alerts.email``). Sections without an ``enabled`` flag
        (alerts, server, webhooks) are only checked here, when the feature is first used, so
        a missing Slack URL does not stop a sync. Raises :class:`ConfigError` naming the key
        and the variable when it is not set.
        """
        field = name if name.endswith("_env") else f"{name}_env"
        key = f"{section}.{field}"
        model: object = self
        for part in section.split("."):
            model = getattr(model, part, None)
        if not isinstance(model, BaseModel) or field not in type(model).model_fields:
            raise ConfigError(
                f"there is no such key (asked for secret {name!r})", path=self._path, key=key
            )
        var = getattr(model, field)
        if not var:
            raise ConfigError(
                "is empty: set it to the name of the environment variable holding the secret",
                path=self._path,
                key=key,
            )
        value = self._secrets.get(key)
        may_be_empty = field in getattr(model, "MAY_BE_EMPTY", frozenset())
        if value is None or (not value.get_secret_value() and not may_be_empty):
            state = "is not set" if value is None else "is empty"
            raise ConfigError(
                f"environment variable {var} {state} (export it)", path=self._path, key=key
            )
        return value.get_secret_value()


# --------------------------------------------------------------------------------------------
# Turning pydantic's errors into ConfigErrors


def _unwrap(tp: Any) -> Any:
    """The model or list type under Annotated[...] and Optional[...]."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that validates the table at ``loc`` (for "did you mean")."""
    tp: Any = Config
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            if typing.get_origin(tp) is not list:
                return None
            tp = get_args(tp)[0]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_NAMES: Mapping[str, str] = types.MappingProxyType(
    {
        "string_type": "a string (in quotes)",
        "int_type": "a whole number",
        "float_type": "a number",
        "bool_type": "true or false",
        "decimal_type": "a decimal number in quotes",
        "date_type": "a date such as 2026-01-01",
        "model_type": "a table",
        "dict_type": "a table",
        "list_type": "an array",
        "int_from_float": "a whole number",
    }
)


def _message(err: Mapping[str, Any], loc: Sequence[int | str]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    name = str(loc[-1]) if loc and isinstance(loc[-1], str) else ""
    # Never echo what was written under a *_env key: it may be a pasted secret.
    got = "" if name.endswith("_env") else f", got {_show(value)}"
    if kind == "config":
        return str(ctx["message"])
    if kind == "missing":
        if len(loc) == 1:
            return f"the required table [{loc[0]}] is missing"
        return "this required key is missing"
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = list(parent.model_fields) if parent is not None else []
        what = "table" if isinstance(value, dict) and len(loc) == 1 else "key"
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            return f"unknown {what}, did you mean '{close[0]}'?"
        return f"unknown {what}; known keys here: " + ", ".join(known)
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "list_type" and isinstance(value, dict):
        return f"expected an array of tables, written [[{name}]], got a table [{name}]"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}{got}"
    if kind in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[kind]}{got}"
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "{ge} or more",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
        "finite_number": "a finite number",
    }
    if kind in bounds:
        return "must be " + bounds[kind].format(**ctx) + got
    text = str(err["msg"])
    return text[:1].lower() + text[1:] + got


def _from_validation_error(exc: ValidationError, path: Path | None) -> list[ConfigError]:
    errors: list[ConfigError] = []
    for err in exc.errors():
        loc = list(err["loc"])
        suffix = (err.get("ctx") or {}).get("key") if err["type"] == "config" else ""
        key = _key_path(loc)
        if suffix:
            key = key + suffix if suffix.startswith("[") else (f"{key}.{suffix}" if key else suffix)
            loc = [*loc, suffix]
        errors.append(ConfigError(_message(err, loc), path=path, key=key or None))
    return errors


# --------------------------------------------------------------------------------------------
# Secrets


def _sections(config: Config) -> Iterator[tuple[str, BaseModel]]:
    """Every table that may hold ``*_env`` keys, with its dotted name."""
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            yield name, value
            for sub in type(value).model_fields:
                inner = getattr(value, sub)
                if isinstance(inner, BaseModel):
                    yield f"{name}.{sub}", inner


def _snapshot_secrets(
    config: Config, env: Mapping[str, str], *, check: bool, path: Path | None
) -> tuple[dict[str, SecretStr], list[ConfigError]]:
    """Copy every named secret out of ``env``; with ``check``, report the missing ones of
    enabled sections."""
    secrets: dict[str, SecretStr] = {}
    errors: list[ConfigError] = []
    for section_name, section in _sections(config):
        for field in type(section).model_fields:
            var = getattr(section, field)
            if field.endswith("_env") and var and var in env:
                secrets[f"{section_name}.{field}"] = SecretStr(env[var])
        if not (check and isinstance(section, _OutsideSystem) and section.enabled):
            continue
        for field in section.secret_keys():
            var = getattr(section, field)
            value = env.get(var)
            if value is None or (value == "" and field not in section.MAY_BE_EMPTY):
                state = "is not set" if value is None else "is empty"
                errors.append(
                    ConfigError(
                        f"environment variable {var} {state} (export it, or set "
                        f"{section_name}.enabled = false)",
                        path=path,
                        key=f"{section_name}.{field}",
                    )
                )
        if isinstance(section, SalesforceSection) and section.auth == "jwt":
            key_file = Path(section.jwt_private_key_file)
            if not key_file.is_file():
                errors.append(
                    ConfigError(
                        f"the private key file {key_file} does not exist (or set "
                        "salesforce.enabled = false)",
                        path=path,
                        key="salesforce.jwt_private_key_file",
                    )
                )
    return secrets, errors


# --------------------------------------------------------------------------------------------
# Public entry points


def find_config_path(cli_path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """Where the configuration is: ``--config PATH``, else ``$CRM_ROI_CONFIG``, else
    ``./config.toml``.

    An explicitly named file that does not exist is an error rather than a reason to fall
    back: silently reading another file would sync with settings the admin did not choose.
    """
    if cli_path is not None and str(cli_path) != "":
        candidate, origin = Path(cli_path), "given by --config"
    elif env.get(CONFIG_ENV_VAR):
        candidate, origin = Path(env[CONFIG_ENV_VAR]), f"given by ${CONFIG_ENV_VAR}"
    else:
        candidate = Path(DEFAULT_CONFIG_NAME)
        origin = f"the default, as neither --config nor ${CONFIG_ENV_VAR} is given"
    if candidate.is_file():
        return candidate
    problem = "is a directory, not a config file" if candidate.is_dir() else "no such file"
    raise ConfigError(
        f"{problem} ({origin}); run `crm-roi init` to write a first config.toml",
        path=candidate,
    )


def parse_config(
    data: Mapping[str, Any],
    *,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    resolve_secrets: bool = True,
) -> Config:
    """Check already-parsed TOML data (what :func:`load_config` does after reading the file).

    Useful for tests and for tools that build a configuration in code. ``path`` is only used
    to name the file in errors and to anchor relative paths.
    """
    env = os.environ if env is None else env
    context = {"base_dir": path.parent if path is not None else None}
    try:
        config = Config.model_validate(dict(data), context=context)
    except ValidationError as exc:
        errors = _from_validation_error(exc, path)
        # ``from None``: pydantic's own error carries the raw inputs; it must not ride along
        # in a traceback.
        raise ConfigError(
            errors[0].message, path=path, key=errors[0].key, others=errors[1:]
        ) from None
    secrets, errors = _snapshot_secrets(config, env, check=resolve_secrets, path=path)
    if errors:
        raise ConfigError(errors[0].message, path=path, key=errors[0].key, others=errors[1:])
    config._path = path
    config._secrets = secrets
    return config


def load_config(
    path: Path, env: Mapping[str, str] | None = None, *, resolve_secrets: bool = True
) -> Config:
    """Read, parse and check a config file.

    ``env`` defaults to ``os.environ``. With ``resolve_secrets`` the variables of every
    enabled outside system must be set (commands that never call out, such as ``report``,
    pass False). Any problem raises one :class:`ConfigError`; the rest are in its ``others``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"is not UTF-8 text (bad byte at offset {exc.start})", path=path
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, path, text) from None
    return parse_config(data, path=path, env=env, resolve_secrets=resolve_secrets)


def _toml_error(exc: tomllib.TOMLDecodeError, path: Path, text: str) -> ConfigError:
    """One line naming line and column (Python 3.11's error only has them in its text)."""
    detail = str(exc)
    match = _TOML_POSITION.search(detail)
    where = ""
    if match:
        detail = detail[: match.start()]
        if match[1]:
            where = f"line {match[1]}, column {match[2]}: "
        else:
            where = f"line {max(len(text.splitlines()), 1)}, at the end of the file: "
    return ConfigError(f"{where}TOML syntax error: {detail}", path=path)


def example_config_text() -> str:
    """The commented example configuration that ships with the package."""
    return resources.files("connector").joinpath("config.example.toml").read_text(encoding="utf-8")


# The example's rows of these tables are illustrations, not data: a first config keeps them
# commented out, or they would be a live budget, mapping and exchange rate.
_EXAMPLE_ROWS = ("[[mapping]]", "[[fx_rates]]", "[[budgets]]", "[[salesforce.campaign_rules]]")


def init_config_text() -> str:
    """What ``crm-roi init`` writes: the example with every outside system disabled and its
    example rows commented out, so a first config pulls nothing and holds no invented
    budget until the admin says otherwise (every key stays documented in place)."""
    lines: list[str] = []
    table = ""
    for line in example_config_text().splitlines(keepends=True):
        if line.startswith("["):
            table = line.split("#", 1)[0].strip()
        if table in _EXAMPLE_ROWS and line.strip():
            line = "# " + line
        elif table.strip("[]") in _OUTSIDE_SYSTEMS and line.startswith("enabled = true "):
            line = line.replace("enabled = true ", "enabled = false", 1)
        elif match := _OPT_IN_SECRET.match(line):
            # an optional channel (a webhook key, Slack) whose default is off stays off
            value = match.group(2)
            line = line.replace(value, '""' + " " * (len(value) - 2), 1)
        lines.append(line)
    return "".join(lines)


_OPT_IN_SECRET = re.compile(r'(\w+_env) = ("[^"]+")\s+#.*; default ""$')
