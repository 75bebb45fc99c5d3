"""Making sure HubSpot has the `warp` property group and every custom property hubsync writes.

Run at every start: it reads the group and property lists (two requests), creates only what is
missing, and adds enumeration options that are missing (additive, so safe). What it cannot fix
it refuses to work around: a property that exists with another type, or `warp_ban` without a
unique value (HubSpot allows `hasUniqueValue` only at creation), stops start-up with a
`PropertySchemaError` naming each property and what is wrong. Two replicas starting together
are fine: a 409 on creation means the other one won, and the property is checked again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import HubsyncError
from app.hubspot.client import HubSpotClient
from app.hubspot.errors import HubSpotConflictError

logger = logging.getLogger(__name__)

GROUP_NAME = "warp"
GROUP_LABEL = "WARP"


@dataclass(frozen=True)
class PropertySpec:
    name: str
    label: str
    type: str  # HubSpot's data type: string, number, enumeration, bool, date, ...
    field_type: str  # how HubSpot shows it: text, number, select, booleancheckbox, ...
    options: tuple[tuple[str, str], ...] = ()  # (value, label)
    has_unique_value: bool = False
    description: str = ""

    def definition(self, group: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": group,
            "description": self.description,
            "formField": False,
        }
        if self.options:
            body["options"] = _options(self.options)
        if self.has_unique_value:
            body["hasUniqueValue"] = True
        return body


_BOOL_OPTIONS = (("true", "Yes"), ("false", "No"))


def _service(kind: str) -> PropertySpec:
    return PropertySpec(
        f"warp_services_{kind}",
        f"WARP {kind} service",
        "enumeration",
        "booleancheckbox",
        options=_BOOL_OPTIONS,
        description=f"Whether the customer's {kind} service is enabled in WARP.",
    )


WARP_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec(
        "warp_ban",
        "WARP billing account number",
        "string",
        "text",
        has_unique_value=True,
        description="WARP's billing account number; the identity hubsync matches companies on.",
    ),
    PropertySpec("warp_status", "WARP status", "string", "text"),
    PropertySpec("warp_credit_limit", "WARP credit limit", "number", "number"),
    PropertySpec("warp_current_balance", "WARP current balance", "number", "number"),
    PropertySpec(
        "warp_customer_type",
        "WARP customer type",
        "enumeration",
        "select",
        options=(("PREPAID", "Prepaid"), ("POSTPAID", "Postpaid"), ("RESELLER", "Reseller")),
    ),
    _service("voice"),
    _service("messaging"),
    _service("data"),
)


class PropertySchemaError(HubsyncError, RuntimeError):
    """HubSpot has a property hubsync needs, in a shape hubsync cannot use or repair."""


@dataclass
class BootstrapReport:
    group_created: bool = False
    created: list[str] = field(default_factory=list)
    options_added: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # differences that do no harm

    @property
    def changed(self) -> bool:
        return self.group_created or bool(self.created) or bool(self.options_added)


async def ensure_properties(
    client: HubSpotClient,
    specs: Sequence[PropertySpec] = WARP_PROPERTIES,
    *,
    group: str = GROUP_NAME,
    group_label: str = GROUP_LABEL,
) -> BootstrapReport:
    """Idempotent: create the group and the missing properties, check the existing ones."""
    report = BootstrapReport()
    groups = {g.get("name") for g in await client.list_property_groups()}
    if group not in groups:
        try:
            await client.create_property_group(group, group_label)
            report.group_created = True
        except HubSpotConflictError:
            pass  # another replica created it a moment ago
    existing = {str(p.get("name")): p for p in await client.list_properties()}
    problems: list[str] = []
    for spec in specs:
        current = existing.get(spec.name)
        if current is None:
            try:
                await client.create_property(spec.definition(group))
                report.created.append(spec.name)
                continue
            except HubSpotConflictError:
                current = await client.get_property(spec.name)
        problems += await _check(client, spec, current, report)
    if problems:
        raise PropertySchemaError(
            "HubSpot company properties need fixing by hand before hubsync can run: "
            + "; ".join(problems)
        )
    if report.changed:
        logger.info(
            "HubSpot properties bootstrapped",
            # Not "created": that name is taken by every LogRecord (its timestamp).
            extra={"properties_created": report.created, "group_created": report.group_created},
        )
    return report


async def _check(
    client: HubSpotClient, spec: PropertySpec, current: Mapping[str, Any], report: BootstrapReport
) -> list[str]:
    problems: list[str] = []
    if current.get("type") != spec.type:
        problems.append(
            f"{spec.name} has type {current.get('type')!r}, hubsync needs {spec.type!r} "
            f"(delete or rename it in HubSpot)"
        )
    if spec.has_unique_value and not current.get("hasUniqueValue"):
        problems.append(
            f"{spec.name} exists without a unique value; HubSpot sets that only at creation, "
            f"so archive and delete {spec.name} in HubSpot and restart hubsync to recreate it"
        )
    if problems:
        return problems
    if current.get("fieldType") != spec.field_type:
        report.notes.append(
            f"{spec.name} shows as {current.get('fieldType')!r} (hubsync creates "
            f"{spec.field_type!r}); values are unaffected"
        )
    have = {str(o.get("value")) for o in current.get("options") or [] if isinstance(o, dict)}
    missing = [(value, label) for value, label in spec.options if value not in have]
    if missing:
        options = [*(current.get("options") or []), *_options(tuple(missing), start=len(have))]
        await client.update_property(spec.name, {"options": options})
        report.options_added[spec.name] = [value for value, _ in missing]
    else:
        report.unchanged.append(spec.name)
    return problems


def _options(options: tuple[tuple[str, str], ...], start: int = 0) -> list[dict[str, Any]]:
    return [
        {"value": value, "label": label, "displayOrder": start + n, "hidden": False}
        for n, (value, label) in enumerate(options)
    ]
