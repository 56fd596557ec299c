"""The Campaign fields the connector writes (DESIGN section 7): check, create, or explain.

``crm-roi setup-fields`` and ``crm-roi doctor`` use this module:

- **check**: ``describe`` shows only the fields the API user can see, with ``updateable``
  telling whether it may edit them (field-level security), plus each field's type and scale;
- **create**: where the API user may customize the org, a missing field is created through
  the Tooling API's ``CustomField`` (the Metadata API's CustomField, as REST), and read/edit
  access is granted on a permission set (``FieldPermissions`` exist only on permission sets,
  not on profiles) which is then assigned to the API user. A field created through the API is
  visible to nobody until such a grant exists;
- **explain**: otherwise it prints exactly what an admin must create (label, API name, type,
  length or digits and decimals), so one person with the rights can do it in a few minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simple_salesforce.format import format_soql

from adapters.http import ClientError, HttpError
from adapters.salesforce.client import SalesforceClient, error_code
from connector.money import minor_unit

log = logging.getLogger(__name__)

SOBJECT = "Campaign"

ACTUAL_COST = "ActualCost"
ATTRIBUTED_REVENUE = "ROI_Attributed_Revenue__c"
ATTRIBUTED_PIPELINE = "ROI_Attributed_Pipeline__c"
ROI = "ROI__c"
ROAS = "ROI_ROAS__c"
COST_PER_LEAD = "ROI_Cost_Per_Lead__c"
BUDGET_CONSUMED = "ROI_Budget_Consumed__c"
FORECAST_COST = "ROI_Forecast_Cost__c"
MODEL = "ROI_Model__c"
SYNCED_AT = "ROI_Synced_At__c"

DEFAULT_PERMISSION_SET = "CRM_ROI_Connector"

# describe() "type" of each metadata type
_DESCRIBE_TYPE = {
    "Currency": "currency",
    "Number": "double",
    "Percent": "percent",
    "Text": "string",
    "DateTime": "datetime",
}


@dataclass(frozen=True)
class FieldSpec:
    """One custom field as the Metadata API defines it."""

    name: str
    label: str
    type: str  # Currency, Number, Percent, Text, DateTime
    description: str
    precision: int | None = None  # total digits
    scale: int | None = None  # decimals
    length: int | None = None  # Text
    written: bool = True  # False: the connector only reads it (department, category)
    also: tuple[str, ...] = ()  # other describe types an admin's existing field may have

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "label": self.label,
            "type": self.type,
            "description": self.description,
            "inlineHelpText": self.description,
            "required": False,
        }
        if self.precision is not None:
            meta["precision"] = self.precision
            meta["scale"] = self.scale or 0
        if self.length is not None:
            meta["length"] = self.length
        return meta

    def describe_type(self) -> str:
        return _DESCRIBE_TYPE[self.type]

    def admin_line(self) -> str:
        """What an admin types in Setup > Object Manager > Campaign > Fields > New."""
        if self.type == "Text":
            size = f", length {self.length}"
        elif self.precision is not None:
            size = f", length {self.precision - (self.scale or 0)}, decimal places {self.scale}"
        else:
            size = ""
        return f"{self.label!r}: API name {self.name}, type {self.type}{size}"


def field_specs(
    reporting_currency: str,
    ad_campaign_id_field: str = "",
    *,
    department_field: str = "",
    category_field: str = "",
) -> list[FieldSpec]:
    """The ROI fields (and the ad-id, department and category fields, when configured);
    currency fields get the reporting currency's minor unit as their scale (0 for JPY, 3
    for KWD)."""
    money_scale = minor_unit(reporting_currency)

    def money(name: str, label: str, what: str) -> FieldSpec:
        return FieldSpec(name, label, "Currency", f"{what} (crm-roi connector)", 18, money_scale)

    specs = [
        money(ATTRIBUTED_REVENUE, "ROI Attributed Revenue", "Won revenue attributed"),
        money(ATTRIBUTED_PIPELINE, "ROI Attributed Pipeline", "Pipeline attributed"),
        FieldSpec(ROI, "ROI", "Number", "(revenue - cost) / cost, in percent", 18, 2),
        FieldSpec(ROAS, "ROI ROAS", "Number", "Attributed revenue / cost", 18, 4),
        money(COST_PER_LEAD, "ROI Cost Per Lead", "Cost per sourced lead"),
        FieldSpec(BUDGET_CONSUMED, "ROI Budget Consumed", "Percent", "Cost / budget", 18, 2),
        money(FORECAST_COST, "ROI Forecast Cost", "Forecast cost at the end date"),
        FieldSpec(MODEL, "ROI Model", "Text", "Attribution model of the figures", length=40),
        FieldSpec(SYNCED_AT, "ROI Synced At", "DateTime", "When the figures were computed"),
    ]
    if ad_campaign_id_field:
        specs.append(
            FieldSpec(
                ad_campaign_id_field,
                "Ad Campaign Id",
                "Text",
                "The ad platform's campaign id, maps ad spend to this campaign",
                length=255,
            )
        )
    specs.extend(_attribute_specs(department_field, category_field))
    return specs


def _attribute_specs(department_field: str, category_field: str) -> list[FieldSpec]:
    """Fields the connector reads to budget by department and category (Salesforce has no
    standard ones); an org's existing picklist serves as well as the text field it creates."""
    specs = []
    if department_field:
        what = "Department whose budget the campaign spends (crm-roi connector)"
        specs.append(
            FieldSpec(
                department_field,
                "Department",
                "Text",
                what,
                length=80,
                written=False,
                also=("picklist",),
            )
        )
    if category_field:
        what = "Budget category: strategic, growth or retention (crm-roi connector)"
        specs.append(
            FieldSpec(
                category_field,
                "Budget Category",
                "Text",
                what,
                length=20,
                written=False,
                also=("picklist",),
            )
        )
    return specs


@dataclass
class FieldReport:
    """What ``describe`` says about the fields the connector needs."""

    missing: list[FieldSpec] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)
    wrong_type: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.read_only or self.wrong_type)


def check_fields(
    visible: Mapping[str, Mapping[str, Any]], specs: Iterable[FieldSpec]
) -> FieldReport:
    report = FieldReport()
    for spec in [*specs, FieldSpec(ACTUAL_COST, "Actual Cost", "Currency", "standard")]:
        info = visible.get(spec.name)
        if info is None:
            if spec.name != ACTUAL_COST:
                report.missing.append(spec)
            else:
                report.read_only.append(spec.name)
            continue
        if spec.written and not info.get("updateable"):
            report.read_only.append(spec.name)
        if spec.name == ACTUAL_COST:
            continue
        expected = spec.describe_type()
        if info.get("type") not in (expected, *spec.also):
            report.wrong_type.append(f"{spec.name} is {info.get('type')}, expected {expected}")
        elif spec.scale is not None and info.get("scale") not in (None, spec.scale):
            report.wrong_type.append(
                f"{spec.name} has {info.get('scale')} decimals, expected {spec.scale}"
            )
    return report


def admin_instructions(specs: Iterable[FieldSpec], permission_set: str) -> list[str]:
    lines = ["An admin must create these Campaign fields (Setup > Object Manager > Campaign >"]
    lines[0] += " Fields & Relationships > New):"
    lines += [f"  - {spec.admin_line()}" for spec in specs]
    lines.append(
        f"then give the API user read and edit access to them (for example in a permission "
        f"set named {permission_set} assigned to that user), and run `crm-roi doctor`."
    )
    return lines


@dataclass
class SetupOutcome:
    created: list[str] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)
    assigned: bool = False
    admin_must_create: list[FieldSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_NO_RIGHTS = frozenset({"INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY", "NOT_FOUND"})


class FieldSetup:
    """Creates the missing fields and grants access to them (where the API user may).

    Its calls are not held back by ``quota_stop_share``: setting up is a one-off admin act."""

    def __init__(
        self, client: SalesforceClient, *, permission_set: str = DEFAULT_PERMISSION_SET
    ) -> None:
        self.client = client
        self.permission_set = permission_set

    def run(self, specs: list[FieldSpec]) -> SetupOutcome:
        outcome = SetupOutcome()
        report = check_fields(self.client.field_map(SOBJECT, refresh=True, guarded=False), specs)
        for spec in report.missing:
            try:
                self.client.post(
                    "tooling/sobjects/CustomField/",
                    {"FullName": f"{SOBJECT}.{spec.name}", "Metadata": spec.metadata()},
                    guarded=False,
                )
                outcome.created.append(spec.name)
                log.info("Salesforce: created Campaign.%s", spec.name)
            except ClientError as exc:
                code = error_code(exc.response) if exc.response is not None else None
                if exc.status in (401, 403) or code in _NO_RIGHTS:
                    outcome.admin_must_create.append(spec)
                    continue
                if code == "DUPLICATE_DEVELOPER_NAME":  # exists, hidden from us: grant below
                    outcome.notes.append(f"Campaign.{spec.name} exists but is hidden")
                    continue
                raise
        to_grant = [
            s.name
            for s in specs
            if s not in outcome.admin_must_create
            and (s.name in outcome.created or s.name in report.read_only or s in report.missing)
        ]
        if ACTUAL_COST in report.read_only:
            to_grant.append(ACTUAL_COST)
        if to_grant:
            self._grant(to_grant, outcome)
        return outcome

    def _grant(self, names: list[str], outcome: SetupOutcome) -> None:
        try:
            parent = self._permission_set_id()
            existing = {
                row["Field"]: row
                for row in self.client.query(
                    format_soql(
                        "SELECT Id, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions "
                        "WHERE ParentId = {} AND SobjectType = {}",
                        parent,
                        SOBJECT,
                    ),
                    guarded=False,
                )
            }
            for name in names:
                full = f"{SOBJECT}.{name}"
                row = existing.get(full)
                grant = {"PermissionsRead": True, "PermissionsEdit": True}
                if row is None:
                    self.client.post(
                        "sobjects/FieldPermissions/",
                        {"ParentId": parent, "SobjectType": SOBJECT, "Field": full, **grant},
                        guarded=False,
                    )
                elif not (row.get("PermissionsRead") and row.get("PermissionsEdit")):
                    self.client.patch(
                        f"sobjects/FieldPermissions/{row['Id']}", grant, guarded=False
                    )
                outcome.granted.append(name)
            outcome.assigned = self._assign(parent)
        except HttpError as exc:
            outcome.notes.append(
                f"could not grant field access on permission set {self.permission_set} "
                f"({exc}); an admin must give the API user read and edit access to: "
                + ", ".join(f"Campaign.{n}" for n in names)
            )

    def _permission_set_id(self) -> str:
        rows = self.client.query(
            format_soql("SELECT Id FROM PermissionSet WHERE Name = {}", self.permission_set),
            guarded=False,
        )
        if rows:
            return str(rows[0]["Id"])
        created = self.client.post(
            "sobjects/PermissionSet/",
            {
                "Name": self.permission_set,
                "Label": self.permission_set.replace("_", " "),
                "Description": "Read and edit the ROI fields the crm-roi connector writes",
            },
            guarded=False,
        )
        return str(created["id"])

    def _assign(self, permission_set_id: str) -> bool:
        try:
            user_id = self.client.get_url("services/oauth2/userinfo")["user_id"]
        except (HttpError, KeyError, TypeError):
            return False
        rows = self.client.query(
            format_soql(
                "SELECT Id FROM PermissionSetAssignment WHERE PermissionSetId = {} "
                "AND AssigneeId = {}",
                permission_set_id,
                user_id,
            ),
            guarded=False,
        )
        if not rows:
            self.client.post(
                "sobjects/PermissionSetAssignment/",
                {"PermissionSetId": permission_set_id, "AssigneeId": user_id},
                guarded=False,
            )
        return True
