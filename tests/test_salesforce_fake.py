"""A fake Salesforce org on `responses`, serving the documented shapes in fixtures/salesforce.

It understands the small SOQL the adapter sends (SELECT ... FROM ... WHERE a op v AND ...
ORDER BY ... LIMIT n), pages results by ``nextRecordsUrl``, answers errors as JSON arrays,
counts calls into ``Sforce-Limit-Info``, checks the bearer token (``expire_session`` makes the
next call a 401 ``INVALID_SESSION_ID``), takes sObject Collections updates with per-record
results, single creates (201) and updates (204), describe, Tooling ``CustomField`` creates
with field-level security, and the OAuth token endpoint. Tests at the bottom check the fake
itself so that the adapter's tests stand on a faithful floor.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

FIXTURES = Path(__file__).parent / "fixtures" / "salesforce"
INSTANCE = "https://acme.my.salesforce.com"
LOGIN = "https://login.salesforce.com"
API = "62.0"
DATA = f"/services/data/v{API}/"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"), parse_float=Decimal)


INACTIVE_IN_FIXTURE = "005xx000001InactAAA"  # the user its INACTIVE_OWNER_OR_USER names


def _collection_answer(code: str | None) -> dict[str, Any]:
    """A per-record result of collections_create_mixed.json: a success, or the one with
    error ``code``."""
    for answer in fixture("collections_create_mixed.json"):
        codes = [e["statusCode"] for e in answer["errors"]]
        if (code is None and answer["success"]) or code in codes:
            return answer
    raise LookupError(code)


def sf_time(value: datetime) -> str:
    """Salesforce's datetime form: ``2026-03-01T10:00:00.000+0000``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def dumps(value: Any) -> str:
    # Decimals are written exactly: JSON numbers with their digits
    text = json.dumps(value, default=lambda v: f"__DEC__{v}__" if isinstance(v, Decimal) else v)
    return re.sub(r'"__DEC__([-0-9.E+]+)__"', r"\1", text)


# ----- SOQL ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:\\.|[^'\\])*')
    | (?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))
    | (?P<date>\d{4}-\d\d-\d\d)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op>>=|<=|!=|=|<|>|\(|\)|,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.X,
)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _tokens(soql: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    soql = soql.strip()
    while pos < len(soql):
        match = _TOKEN.match(soql, pos)
        if not match or match.end() == pos:
            raise ValueError(f"fake SOQL cannot read {soql[pos:]!r}")
        pos = match.end()
        kind = match.lastgroup
        text = match[kind]
        if kind == "str":
            body = text[1:-1]
            value = re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m[1], m[1]), body)
            out.append(("value", value))
        elif kind == "dt":
            out.append(("value", datetime.fromisoformat(text.replace("Z", "+00:00"))))
        elif kind == "date":
            out.append(("value", date.fromisoformat(text)))
        elif kind == "num":
            out.append(("value", Decimal(text)))
        elif kind == "op":
            out.append(("op", text))
        else:
            upper = text.upper()
            if upper in ("TRUE", "FALSE"):
                out.append(("value", upper == "TRUE"))
            elif upper == "NULL":
                out.append(("value", None))
            else:
                out.append(("word", text))
    return out


@dataclass
class Query:
    fields: list[str]
    sobject: str
    where: list[tuple[str, str, Any]]
    order: list[tuple[str, bool]]
    limit: int | None


def parse_soql(soql: str) -> Query:
    toks = _tokens(soql)
    i = 0

    def take(kind: str | None = None, text: str | None = None) -> Any:
        nonlocal i
        k, v = toks[i]
        if (kind and k != kind) or (text and str(v).upper() != text):
            raise ValueError(f"fake SOQL: expected {text or kind} at {toks[i:]}")
        i += 1
        return v

    def peek(text: str) -> bool:
        return i < len(toks) and toks[i][0] in ("word", "op") and str(toks[i][1]).upper() == text

    take("word", "SELECT")
    fields = [take("word")]
    while peek(","):
        take("op")
        fields.append(take("word"))
    take("word", "FROM")
    sobject = take("word")
    where: list[tuple[str, str, Any]] = []
    if peek("WHERE"):
        take()
        while True:
            name = take("word")
            if peek("IN"):
                take()
                take("op", "(")
                values = [take("value")]
                while peek(","):
                    take("op")
                    values.append(take("value"))
                take("op", ")")
                where.append((name, "IN", values))
            else:
                where.append((name, take("op"), take("value")))
            if not peek("AND"):
                break
            take()
    order: list[tuple[str, bool]] = []
    if peek("ORDER"):
        take()
        take("word", "BY")
        while True:
            name = take("word")
            desc = False
            if peek("ASC") or peek("DESC"):
                desc = str(take()).upper() == "DESC"
            order.append((name, desc))
            if not peek(","):
                break
            take()
    limit = None
    if peek("LIMIT"):
        take()
        limit = int(take("value"))
    if i != len(toks):
        raise ValueError(f"fake SOQL: unexpected {toks[i:]}")
    return Query(fields, sobject, where, order, limit)


def _comparable(stored: Any, literal: Any) -> tuple[Any, Any]:
    if isinstance(literal, datetime):
        return (datetime.fromisoformat(stored) if stored else None), literal
    if isinstance(literal, date):
        return (date.fromisoformat(stored[:10]) if stored else None), literal
    if isinstance(literal, str) and isinstance(stored, str):
        return stored.casefold(), literal.casefold()
    if isinstance(literal, Decimal) and stored is not None and not isinstance(stored, bool):
        return Decimal(str(stored)), literal
    return stored, literal


def _matches(record: dict[str, Any], cond: tuple[str, str, Any]) -> bool:
    name, op, literal = cond
    stored = record.get(name)
    if op == "IN":
        return any(_matches(record, (name, "=", v)) for v in literal)
    a, b = _comparable(stored, literal)
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if a is None or b is None:
        return False
    return {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op]


# ----- the org ------------------------------------------------------------------------------

_PREFIX = {
    "Campaign": "701",
    "Lead": "00Q",
    "Contact": "003",
    "CampaignMember": "00v",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "Task": "00T",
    "User": "005",
    "PermissionSet": "0PS",
    "FieldPermissions": "01k",
    "PermissionSetAssignment": "0Pa",
    "CustomField": "00N",
    "DatedConversionRate": "04w",
    "CurrencyType": "02B",
    "CampaignMemberStatus": "01Y",
}

STANDARD_FIELDS: dict[str, dict[str, str]] = {
    "Campaign": {
        "Name": "string",
        "ParentId": "reference",
        "Status": "picklist",
        "Type": "picklist",
        "StartDate": "date",
        "EndDate": "date",
        "BudgetedCost": "currency",
        "ActualCost": "currency",
        "OwnerId": "reference",
        "Ad_Campaign_Id__c": "string",
    },
    "Lead": {
        "Email": "email",
        "FirstName": "string",
        "LastName": "string",
        "Company": "string",
        "Phone": "phone",
        "LeadSource": "picklist",
        "Status": "picklist",
        "Description": "textarea",
        "IsConverted": "boolean",
        "ConvertedContactId": "reference",
        "ConvertedOpportunityId": "reference",
        "ConvertedDate": "date",
        "MasterRecordId": "reference",
    },
    "Contact": {
        "Email": "email",
        "FirstName": "string",
        "LastName": "string",
        "AccountId": "reference",
        "LeadSource": "picklist",
        "MasterRecordId": "reference",
    },
    "CampaignMember": {
        "CampaignId": "reference",
        "LeadId": "reference",
        "ContactId": "reference",
        "Status": "picklist",
        "HasResponded": "boolean",
    },
    "Opportunity": {
        "Name": "string",
        "AccountId": "reference",
        "Amount": "currency",
        "StageName": "picklist",
        "IsClosed": "boolean",
        "IsWon": "boolean",
        "CloseDate": "date",
        "CampaignId": "reference",
    },
    "OpportunityContactRole": {
        "OpportunityId": "reference",
        "ContactId": "reference",
        "Role": "picklist",
        "IsPrimary": "boolean",
    },
    "User": {"Name": "string", "IsActive": "boolean"},
    "Task": {
        "Subject": "string",
        "Description": "textarea",
        "WhatId": "reference",
        "OwnerId": "reference",
        "Priority": "picklist",
        "Status": "picklist",
        "ActivityDate": "date",
        "IsClosed": "boolean",
    },
    "TaskStatus": {
        "ApiName": "string",
        "MasterLabel": "string",
        "IsClosed": "boolean",
        "IsDefault": "boolean",
        "SortOrder": "int",
    },
}
# The standard Task Status picklist (TaskStatus object reference); orgs may rename or add.
STANDARD_TASK_STATUSES: tuple[tuple[str, bool], ...] = (
    ("Not Started", False),
    ("In Progress", False),
    ("Completed", True),
    ("Waiting on someone else", False),
    ("Deferred", False),
)
_SYSTEM = {
    "Id": "id",
    "CreatedDate": "datetime",
    "SystemModstamp": "datetime",
    "IsDeleted": "boolean",
}
_READ_ONLY = {
    "Id",
    "CreatedDate",
    "SystemModstamp",
    "IsDeleted",
    "IsConverted",
    "HasResponded",
    "IsClosed",
}
_DESCRIBE_TYPE = {
    "Currency": "currency",
    "Number": "double",
    "Percent": "percent",
    "Text": "string",
    "DateTime": "datetime",
}


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    headers: dict[str, str]
    verify: Any = None


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    times: int


@dataclass
class FakeSalesforce:
    """The org's state plus the HTTP behaviour; install with :meth:`install`."""

    multi_currency: bool = False
    corporate: str = "USD"
    org_currency: str = "USD"
    acm: bool = True  # advanced currency management (DatedConversionRate exists)
    page_size: int = 2000
    usage_used: int = 1000
    usage_limit: int = 100_000
    roi_fields: bool = True
    can_customize: bool = True
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    requests: list[Request] = field(default_factory=list)
    logins: list[dict[str, Any]] = field(default_factory=list)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reject: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reject_once: bool = True
    inactive_users: set[str] = field(default_factory=set)
    login_error: dict[str, Any] | None = None
    on_request: Callable[[str, str], None] | None = None  # (method, path), before answering
    task_statuses: tuple[tuple[str, bool], ...] = STANDARD_TASK_STATUSES
    # Subject -> the errors its next collection create gets (once): a required custom
    # field, a validation rule
    refuse: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._tokens: set[str] = set()
        self._issued = 0
        self._failures: list[Failure] = []
        self._expiries: list[list[Any]] = []
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self.fields: dict[str, dict[str, dict[str, Any]]] = {}
        self.hidden: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for sobject, names in STANDARD_FIELDS.items():
            fields = {**_SYSTEM, **names}
            if self.multi_currency and sobject in ("Campaign", "Opportunity"):
                fields["CurrencyIsoCode"] = "picklist"
            self.fields[sobject] = {
                name: {
                    "name": name,
                    "type": kind,
                    "updateable": name not in _READ_ONLY,
                    "createable": name not in _READ_ONLY,
                    "custom": name.endswith("__c"),
                    "scale": 2 if kind == "currency" else 0,
                }
                for name, kind in fields.items()
            }
        if self.roi_fields:
            from adapters.salesforce.fields import field_specs

            for spec in field_specs("USD"):
                self._add_field("Campaign", spec, visible=True)
        for order, (name, closed) in enumerate(self.task_statuses, 1):
            self.add(
                "TaskStatus",
                ApiName=name,
                MasterLabel=name,
                IsClosed=closed,
                IsDefault=order == 1,
                SortOrder=order,
            )
        self.user_id = self.add("User", Name="Integration User", IsActive=True)
        self.add("Organization", DefaultCurrencyIsoCode=self.org_currency)

    # ----- setup helpers ---------------------------------------------------------------

    def new_id(self, sobject: str) -> str:
        prefix = _PREFIX.get(sobject, "a00")
        return f"{prefix}xx{next(self._ids):010d}AAA"

    def stamp(self) -> str:
        return sf_time(self.now)

    def add(self, sobject: str, **values: Any) -> str:
        rid = values.pop("Id", None) or self.new_id(sobject)
        record = {
            "Id": rid,
            "IsDeleted": False,
            "CreatedDate": self.stamp(),
            "SystemModstamp": self.stamp(),
            **values,
        }
        self.objects[sobject][rid] = record
        self._derive(sobject, record)
        return rid

    def touch(self, sobject: str, rid: str, **values: Any) -> None:
        self.objects[sobject][rid].update(values, SystemModstamp=self.stamp())
        self._derive(sobject, self.objects[sobject][rid])

    def _derive(self, sobject: str, record: dict[str, Any]) -> None:
        if sobject == "Task":  # Salesforce derives IsClosed from the status value
            record["IsClosed"] = record.get("Status") in self.closed_statuses()

    def closed_statuses(self) -> set[str]:
        return {s["ApiName"] for s in self.objects["TaskStatus"].values() if s["IsClosed"]}

    def delete(self, sobject: str, rid: str, *, hard: bool = False) -> None:
        if hard:
            del self.objects[sobject][rid]
        else:
            self.touch(sobject, rid, IsDeleted=True)

    def _add_field(self, sobject: str, spec: Any, *, visible: bool) -> None:
        info = {
            "name": spec.name,
            "type": _DESCRIBE_TYPE[spec.type],
            "updateable": True,
            "createable": True,
            "custom": True,
            "scale": spec.scale or 0,
        }
        if visible:
            self.fields[sobject][spec.name] = info
        else:
            self.hidden[sobject][spec.name] = info

    def fail(
        self, method: str, path: str, status: int, body: Any = None, *, times: int = 1
    ) -> None:
        """The next ``times`` calls of ``method`` whose path matches ``path`` fail."""
        self._failures.append(Failure(method.upper(), re.compile(path), status, body, times))

    def expire_session(self) -> None:
        self._tokens.clear()

    def expire_at(self, method: str, path: str, nth: int) -> None:
        """The session expires just before the ``nth`` request of ``method`` on ``path``."""
        self._expiries.append([method.upper(), re.compile(path), nth])

    def calls(self, method: str, path: str) -> list[Request]:
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    def queries(self) -> list[str]:
        return [r.params["q"] for r in self.requests if "q" in r.params]

    @property
    def write_calls(self) -> list[Request]:
        return self.calls("PATCH", r"composite/sobjects$")

    # ----- HTTP ------------------------------------------------------------------------

    def install(self, rsps: responses.RequestsMock) -> FakeSalesforce:
        # one callback per URL: `responses` drops the first of several matches after use
        instance_host = re.escape(urlsplit(INSTANCE).hostname or "")
        token_url = re.compile(
            rf"^https://(?!{instance_host}/)[a-z0-9.\-]+\.salesforce\.com/services/oauth2/token$"
        )
        rsps.add_callback(responses.POST, token_url, callback=self._token)
        anything = re.compile("^" + re.escape(INSTANCE) + "/.*")
        for method in (responses.GET, responses.POST, responses.PATCH, responses.DELETE):
            rsps.add_callback(method, anything, callback=self._dispatch)
        return self

    def _reply(self, status: int, body: Any = None) -> tuple[int, dict[str, str], str]:
        headers = {"Sforce-Limit-Info": f"api-usage={self.usage_used}/{self.usage_limit}"}
        if body is None:
            return status, headers, ""
        headers["Content-Type"] = "application/json;charset=UTF-8"
        return status, headers, dumps(body)

    def _error(self, status: int, fixture_name: str, **replace: str) -> tuple[int, dict, str]:
        body = fixture(fixture_name)
        for entry in body:
            for key, value in replace.items():
                entry[key] = value
        return self._reply(status, body)

    def _token(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        form = {k: v[0] for k, v in parse_qs(request.body or "").items()}
        basic = request.headers.get("Authorization", "")
        entry = {"url": request.url, "form": form, "grant_type": form.get("grant_type")}
        if basic.startswith("Basic "):
            entry["basic"] = base64.b64decode(basic[6:]).decode()
        entry["verify"] = getattr(request, "req_kwargs", {}).get("verify")
        self.logins.append(entry)
        if self.login_error is not None:
            return 400, {"Content-Type": "application/json"}, json.dumps(self.login_error)
        self._issued += 1
        body = fixture("token_success.json")
        token = f"00Dxx0000001gPL!token-{self._issued}"
        body["access_token"] = token
        body["instance_url"] = INSTANCE
        self._tokens.add(token)
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _dispatch(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(request.url)
        if parts.path == "/services/oauth2/token":
            return self._token(request)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = json.loads(request.body, parse_float=Decimal) if request.body else None
        method = request.method.upper()
        path = parts.path
        verify = getattr(request, "req_kwargs", {}).get("verify")
        self.requests.append(Request(method, path, params, body, dict(request.headers), verify))
        for rule in self._expiries:
            if rule[0] == method and rule[1].search(path):
                rule[2] -= 1
                if rule[2] == 0:
                    self.expire_session()
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._tokens:
            return self._reply(401, fixture("error_invalid_session.json"))
        self.usage_used += 1
        if self.on_request is not None:
            self.on_request(method, path)
        for failure in self._failures:
            if failure.times > 0 and failure.method == method and failure.path.search(path):
                failure.times -= 1
                return self._reply(failure.status, failure.body)
        if path == "/services/oauth2/userinfo":
            info = fixture("userinfo.json")
            info["user_id"] = self.user_id
            return self._reply(200, info)
        if not path.startswith(DATA):
            return self._reply(404, [{"errorCode": "NOT_FOUND", "message": "not found"}])
        rest = path[len(DATA) :]
        return self._route(method, rest, params, body)

    def _route(
        self, method: str, rest: str, params: dict[str, str], body: Any
    ) -> tuple[int, dict, str]:
        if method == "GET" and rest.rstrip("/") in ("query", "queryAll"):
            return self._query(params["q"], include_deleted=rest.startswith("queryAll"))
        match = re.fullmatch(r"query/(01g[^/]+)", rest)
        if method == "GET" and match:
            return self._next_page(match[1])
        if method == "GET" and rest.rstrip("/") == "sobjects":
            return self._reply(200, {"sobjects": self._global()})
        if method == "GET" and rest.rstrip("/") == "limits":
            limits = fixture("limits.json")
            limits["DailyApiRequests"] = {
                "Max": self.usage_limit,
                "Remaining": self.usage_limit - self.usage_used,
            }
            return self._reply(200, limits)
        match = re.fullmatch(r"sobjects/(\w+)/describe", rest)
        if method == "GET" and match:
            return self._describe(match[1])
        if method == "PATCH" and rest == "composite/sobjects":
            return self._collection_update(body)
        if method == "POST" and rest == "composite/sobjects":
            return self._collection_create(body)
        match = re.fullmatch(r"tooling/sobjects/CustomField/?", rest)
        if method == "POST" and match:
            return self._create_field(body)
        match = re.fullmatch(r"sobjects/(\w+)/?", rest)
        if method == "POST" and match:
            return self._create(match[1], body)
        match = re.fullmatch(r"sobjects/(\w+)/(\w+)", rest)
        if match and method == "PATCH":
            return self._update(match[1], match[2], body)
        if match and method == "GET":
            record = self.objects[match[1]].get(match[2])
            if record is None:
                return self._reply(404, [{"errorCode": "NOT_FOUND", "message": "not found"}])
            if record.get("IsDeleted"):
                return self._reply(404, fixture("error_entity_deleted.json"))
            wanted = params.get("fields", "").split(",") if params.get("fields") else list(record)
            return self._reply(200, {k: record.get(k) for k in wanted})
        return self._reply(404, [{"errorCode": "NOT_FOUND", "message": f"no route {rest}"}])

    def _global(self) -> list[dict[str, Any]]:
        names = set(STANDARD_FIELDS) | {"Organization", "PermissionSet", "FieldPermissions"}
        if self.multi_currency:
            names |= {"CurrencyType"} | ({"DatedConversionRate"} if self.acm else set())
        return [
            {"name": n, "createable": True, "updateable": True, "queryable": True}
            for n in sorted(names)
        ]

    def _describe(self, sobject: str) -> tuple[int, dict, str]:
        if sobject not in self.fields:
            return self._reply(404, [{"errorCode": "NOT_FOUND", "message": "no such sObject"}])
        template = fixture("describe_campaign.json")
        template.update(name=sobject, label=sobject, fields=list(self.fields[sobject].values()))
        return self._reply(200, template)

    def _query(self, soql: str, *, include_deleted: bool) -> tuple[int, dict, str]:
        query = parse_soql(soql)
        if query.sobject == "DatedConversionRate" and not (self.multi_currency and self.acm):
            return self._reply(400, fixture("error_invalid_type.json"))
        if query.sobject == "CurrencyType" and not self.multi_currency:
            return self._reply(400, fixture("error_invalid_type.json"))
        known = self.fields.get(query.sobject)
        if known is not None:
            for name in query.fields:
                base = name.split(".")[0] + "Id" if "." in name else name
                if base not in known:
                    return self._error(
                        400,
                        "error_invalid_field.json",
                        message=f"No such column '{name}' on entity '{query.sobject}'",
                    )
        rows = [
            r
            for r in self.objects[query.sobject].values()
            if (include_deleted or not r.get("IsDeleted"))
            and all(_matches(r, cond) for cond in query.where)
        ]
        for name, desc in reversed(query.order):
            rows.sort(key=lambda r, n=name: (r.get(n) is None, str(r.get(n))), reverse=desc)
        if query.limit is not None:
            rows = rows[: query.limit]
        out = [self._project(query, r) for r in rows]
        locator = f"01gxx{next(self._ids):010d}"
        self._cursors[locator] = out
        return self._page(locator, 0)

    def _project(self, query: Query, record: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "attributes": {
                "type": query.sobject,
                "url": f"{DATA}sobjects/{query.sobject}/{record['Id']}",
            }
        }
        for name in query.fields:
            if "." in name:
                relation, sub = name.split(".", 1)
                target_id = record.get(relation + "Id")
                target = self._find(target_id)
                row[relation] = (
                    None
                    if target is None
                    else {"attributes": {"type": relation}, sub: target.get(sub)}
                )
            else:
                row[name] = record.get(name)
        return row

    def _find(self, rid: str | None) -> dict[str, Any] | None:
        if not rid:
            return None
        for records in self.objects.values():
            if rid in records:
                return records[rid]
        return None

    def _page(self, locator: str, offset: int) -> tuple[int, dict, str]:
        rows = self._cursors[locator]
        chunk = rows[offset : offset + self.page_size]
        done = offset + self.page_size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": chunk}
        if not done:
            body["nextRecordsUrl"] = f"{DATA}query/{locator}-{offset + self.page_size}"
        return self._reply(200, body)

    def _next_page(self, ref: str) -> tuple[int, dict, str]:
        locator, _, offset = ref.rpartition("-")
        return self._page(locator, int(offset))

    def _collection_update(self, body: dict[str, Any]) -> tuple[int, dict, str]:
        records = body.get("records", [])
        if len(records) > 200:
            return self._reply(
                400, [{"errorCode": "EXCEEDED_ID_LIMIT", "message": "record limit reached"}]
            )
        assert body.get("allOrNone") is False
        template = fixture("collections_update_mixed.json")
        results = []
        for record in records:
            rid = record["id"]
            sobject = record["attributes"]["type"]
            if rid in self.reject:
                errors = self.reject.pop(rid) if self.reject_once else self.reject[rid]
                results.append({**template[1], "errors": errors})
                continue
            if rid not in self.objects[sobject] or self.objects[sobject][rid]["IsDeleted"]:
                results.append(
                    {
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "ENTITY_IS_DELETED",
                                "message": "entity is deleted",
                                "fields": [],
                            }
                        ],
                    }
                )
                continue
            values = {k: v for k, v in record.items() if k not in ("attributes", "id")}
            bad = [k for k in values if not self.fields[sobject].get(k, {}).get("updateable")]
            if bad:
                results.append(
                    {
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "INVALID_FIELD",
                                "message": f"No such column '{bad[0]}'",
                                "fields": bad,
                            }
                        ],
                    }
                )
                continue
            self.touch(sobject, rid, **values)
            self.writes.append((rid, values))
            results.append({**template[0], "id": rid})
        return self._reply(200, results)

    def _collection_create(self, body: dict[str, Any]) -> tuple[int, dict, str]:
        """``POST composite/sobjects`` ("Create Records Using sObject Collections"): up to
        200 records, one result each, in order."""
        records = body.get("records", [])
        if len(records) > 200:
            return self._reply(
                400, [{"errorCode": "EXCEEDED_ID_LIMIT", "message": "record limit reached"}]
            )
        assert body.get("allOrNone") is False
        results = []
        for record in records:
            assert "id" not in record, "a create must not name an id"
            sobject = record["attributes"]["type"]
            values = {k: v for k, v in record.items() if k != "attributes"}
            errors = self._refusal(sobject, values)
            if errors:
                results.append({"success": False, "errors": errors})
                continue
            results.append({**_collection_answer(None), "id": self.add(sobject, **values)})
        return self._reply(200, results)

    def _refusal(self, sobject: str, values: dict[str, Any]) -> list[dict[str, Any]] | None:
        if sobject == "Task" and values.get("OwnerId") in self.inactive_users:
            (error,) = _collection_answer("INACTIVE_OWNER_OR_USER")["errors"]
            message = error["message"].replace(INACTIVE_IN_FIXTURE, values["OwnerId"])
            return [{**error, "message": message}]
        if values.get("Subject") in self.refuse:
            return self.refuse.pop(values["Subject"])
        bad = [k for k in values if not self.fields[sobject].get(k, {}).get("createable")]
        if bad:
            return [{"statusCode": "INVALID_FIELD", "message": f"No such column '{bad[0]}'"}]
        return None

    def _create(self, sobject: str, body: dict[str, Any]) -> tuple[int, dict, str]:
        if sobject == "Lead" and not (body.get("LastName") and body.get("Company")):
            return self._reply(400, fixture("error_required_field.json"))
        if sobject == "CampaignMember":
            person = (
                ("LeadId", body.get("LeadId"))
                if body.get("LeadId")
                else ("ContactId", body.get("ContactId"))
            )
            for member in self.objects["CampaignMember"].values():
                if (
                    member["CampaignId"] == body["CampaignId"]
                    and member.get(person[0]) == person[1]
                ):
                    return self._reply(400, fixture("error_duplicate_member.json"))
            body = {
                **body,
                "HasResponded": body.get("Status") in self.responded_labels(body["CampaignId"]),
            }
        if sobject == "Task" and body.get("OwnerId") in self.inactive_users:
            return self._reply(400, fixture("error_inactive_owner.json"))
        if sobject in ("PermissionSet", "FieldPermissions", "PermissionSetAssignment") and not (
            self.can_customize
        ):
            return self._reply(400, fixture("error_insufficient_access.json"))
        if sobject == "FieldPermissions":
            self._grant(body)
        rid = self.add(sobject, **body)
        created = fixture("create_success.json")
        created["id"] = rid
        return self._reply(201, created)

    def _update(self, sobject: str, rid: str, body: dict[str, Any]) -> tuple[int, dict, str]:
        if rid not in self.objects[sobject]:
            return self._reply(404, [{"errorCode": "NOT_FOUND", "message": "not found"}])
        if sobject == "CampaignMember" and "Status" in body:
            campaign = self.objects[sobject][rid]["CampaignId"]
            body = {**body, "HasResponded": body["Status"] in self.responded_labels(campaign)}
        if sobject == "FieldPermissions":
            self._grant({**self.objects[sobject][rid], **body})
        statuses = {s["ApiName"] for s in self.objects["TaskStatus"].values()}
        if sobject == "Task" and "Status" in body and body["Status"] not in statuses:
            return self._error(
                400,
                "error_restricted_picklist.json",
                message=f"Status: bad value for restricted picklist field: {body['Status']}",
            )
        self.touch(sobject, rid, **body)
        return self._reply(204)

    def responded_labels(self, campaign_id: str) -> set[str]:
        labels = {
            s["Label"]
            for s in self.objects["CampaignMemberStatus"].values()
            if s["CampaignId"] == campaign_id and s["HasResponded"]
        }
        return labels or {"Responded"}

    def _create_field(self, body: dict[str, Any]) -> tuple[int, dict, str]:
        if not self.can_customize:
            return self._reply(400, fixture("error_insufficient_access.json"))
        from adapters.salesforce.fields import FieldSpec

        sobject, name = body["FullName"].split(".", 1)
        meta = body["Metadata"]
        spec = FieldSpec(
            name,
            meta["label"],
            meta["type"],
            meta["description"],
            meta.get("precision"),
            meta.get("scale"),
            meta.get("length"),
        )
        self._add_field(sobject, spec, visible=False)  # no field-level security yet
        self.add("CustomField", FullName=body["FullName"])
        created = fixture("create_success.json")
        created["id"] = self.new_id("CustomField")
        return self._reply(201, created)

    def _grant(self, grant: dict[str, Any]) -> None:
        sobject, name = grant["Field"].split(".", 1)
        info = self.hidden[sobject].pop(name, None) or self.fields[sobject].get(name)
        if info is None:
            return
        if grant.get("PermissionsRead"):
            self.fields[sobject][name] = {**info, "updateable": bool(grant.get("PermissionsEdit"))}


@contextmanager
def fake_orgs() -> Iterator[Callable[..., FakeSalesforce]]:
    """``make(**options)`` installs a fake org on a started `responses` mock (stopped after).

    Test modules wrap this in their own ``fake`` fixture."""
    mocks: list[responses.RequestsMock] = []

    def make(**options: Any) -> FakeSalesforce:
        rsps = responses.RequestsMock(assert_all_requests_are_fired=False)
        rsps.start()
        mocks.append(rsps)
        return FakeSalesforce(**options).install(rsps)

    try:
        yield make
    finally:
        for rsps in mocks:
            rsps.stop()
            rsps.reset()


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeSalesforce]]:
    with fake_orgs() as make:
        yield make


# ----- the fake's own checks -----------------------------------------------------------------


def test_soql_parser_reads_what_the_adapter_sends() -> None:
    query = parse_soql(
        "SELECT Id, Owner.Name FROM Campaign WHERE SystemModstamp >= 2026-03-01T10:00:00+00:00 "
        "AND Name = 'O\\'Brien' AND OwnerId IN ('005A','005B') ORDER BY SystemModstamp ASC, "
        "Id ASC LIMIT 5"
    )
    assert query.fields == ["Id", "Owner.Name"]
    assert query.where[1] == ("Name", "=", "O'Brien")
    assert query.where[2] == ("OwnerId", "IN", ["005A", "005B"])
    assert query.order == [("SystemModstamp", False), ("Id", False)]
    assert query.limit == 5


def test_fake_pages_and_refuses_stale_tokens(fake) -> None:
    org = fake(page_size=2)
    for i in range(5):
        org.add("Lead", LastName=f"L{i}", Company="C")
    org.expire_session()
    session = requests.Session()
    answer = session.get(f"{INSTANCE}{DATA}query/", params={"q": "SELECT Id FROM Lead"})
    assert answer.status_code == 401 and answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert "api-usage=" in answer.headers["Sforce-Limit-Info"]
    token = session.post(f"{LOGIN}/services/oauth2/token", data={"grant_type": "x"}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    page = session.get(
        f"{INSTANCE}{DATA}query/", params={"q": "SELECT Id FROM Lead"}, headers=headers
    ).json()
    assert len(page["records"]) == 2 and page["done"] is False
    seen = len(page["records"])
    while not page["done"]:
        page = session.get(INSTANCE + page["nextRecordsUrl"], headers=headers).json()
        seen += len(page["records"])
    assert seen == 5 and "nextRecordsUrl" not in page


def test_date_helpers() -> None:
    assert sf_time(datetime(2026, 3, 1, 10, 0, 0, 250_000, tzinfo=UTC)) == (
        "2026-03-01T10:00:00.250+0000"
    )
    assert _comparable("2026-03-01T10:00:00.000+0000", datetime(2026, 3, 1, tzinfo=UTC))[0] > (
        datetime(2026, 2, 28, tzinfo=UTC) + timedelta(days=1)
    ) - timedelta(seconds=1)


# ----- shared by the Salesforce test modules -------------------------------------------------

SECRET = "Sx9-DISTINCTIVE-s3cr3t-Q7v"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def sf_config(*, reporting_currency: str = "USD", **salesforce: Any):
    """A parsed config with Salesforce enabled against the fake (secrets from a fake env)."""
    from connector.config import parse_config

    section = {
        "enabled": True,
        "instance_url": INSTANCE,
        "auth": "client_credentials",
        "api_version": API,
        **salesforce,
    }
    env = {
        "SF_CLIENT_ID": "3MVG9-client-id",
        "SF_CLIENT_SECRET": SECRET,
        "SF_USERNAME": "integration@acme.example",
        "SF_PASSWORD": "pw-" + SECRET,
        "SF_SECURITY_TOKEN": "tok" + SECRET,
        "SF_SESSION_ID": "00Dxx!session-" + SECRET,
    }
    data = {
        "connector": {
            "database_url": "sqlite:///unused.db",
            "reporting_currency": reporting_currency,
        },
        "salesforce": section,
    }
    return parse_config(data, env=env)


def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def seed_world(org: FakeSalesforce) -> dict[str, str]:
    """Two campaigns, one person who converted into a won deal, one open lead."""
    ids: dict[str, str] = {}
    org.now = at(1)
    ids["owner"] = org.add("User", Name="Maria Marketer", IsActive=True)
    ids["webinar"] = org.add(
        "Campaign",
        Name="Spring Webinar",
        Type="Webinar",
        Status="Completed",
        StartDate="2026-02-01",
        EndDate="2026-02-28",
        BudgetedCost=Decimal("5000"),
        ActualCost=Decimal("1200.50"),
        OwnerId=ids["owner"],
        Ad_Campaign_Id__c=None,
    )
    ids["search"] = org.add(
        "Campaign",
        Name="Search Q1",
        Type="Paid Search",
        Status="In Progress",
        StartDate="2026-01-01",
        EndDate="2026-03-31",
        BudgetedCost=Decimal("20000"),
        OwnerId=ids["owner"],
        Ad_Campaign_Id__c="20583018",
    )
    org.now = at(2)
    ids["contact"] = org.add(
        "Contact",
        Email="Ada@Example.com",
        FirstName="Ada",
        LastName="Lovelace",
        CreatedDate=sf_time(at(1, 8)),
    )
    ids["opp"] = org.add(
        "Opportunity",
        Name="Big deal",
        Amount=Decimal("10000.00"),
        StageName="Closed Won",
        IsClosed=True,
        IsWon=True,
        CloseDate="2026-03-05",
        CampaignId=ids["search"],
        CreatedDate=sf_time(at(3)),
    )
    ids["lead"] = org.add(
        "Lead",
        Email="ada@example.com",
        LastName="Lovelace",
        Company="AE",
        IsConverted=True,
        ConvertedContactId=ids["contact"],
        ConvertedOpportunityId=ids["opp"],
        ConvertedDate="2026-03-03",
        CreatedDate=sf_time(at(1, 7)),
    )
    ids["open_lead"] = org.add("Lead", Email="bob@example.com", LastName="B", Company="BB")
    org.now = at(3)
    ids["m1"] = org.add(
        "CampaignMember",
        CampaignId=ids["search"],
        LeadId=ids["lead"],
        ContactId=ids["contact"],
        HasResponded=True,
        Status="Responded",
        CreatedDate=sf_time(at(1, 7, 30)),
    )
    ids["m2"] = org.add(
        "CampaignMember",
        CampaignId=ids["webinar"],
        ContactId=ids["contact"],
        HasResponded=True,
        Status="Attended",
        CreatedDate=sf_time(at(2, 10)),
    )
    ids["m3"] = org.add(
        "CampaignMember",
        CampaignId=ids["webinar"],
        LeadId=ids["open_lead"],
        HasResponded=False,
        Status="Sent",
        CreatedDate=sf_time(at(2, 11)),
    )
    ids["role"] = org.add(
        "OpportunityContactRole",
        OpportunityId=ids["opp"],
        ContactId=ids["contact"],
        Role="Decision Maker",
        IsPrimary=True,
    )
    return ids
