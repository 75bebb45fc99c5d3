"""Company property definitions and groups, and the value rules they impose.

The sandbox starts with a handful of HubSpot's default company properties and none of
hubsync's `warp_*` ones, so the bootstrap that creates them is exercised for real. Values are
validated and normalised here the way HubSpot does it: everything is stored as a string,
numbers in canonical form, booleans as "true"/"false", datetimes as ISO 8601 with milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.sandbox.clock import now_iso
from app.sandbox.errors import ApiError, JsonDict, PropertyIssue, bad_request, validation_error
from app.sandbox.fields import (
    DATA_SENSITIVITIES,
    optional_bool,
    optional_enum,
    optional_int,
    optional_string,
    required_string,
)
from app.sandbox.values import InvalidValueError, issue_code, normalize_value

MAX_UNIQUE_PROPERTIES = 10
_FIELD_TYPES = {
    "string": {"text", "textarea", "phonenumber", "html", "file"},
    "number": {"number", "calculation_equation"},
    "bool": {"booleancheckbox"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "datetime": {"date"},
    "date": {"date"},
    "phone_number": {"phonenumber", "text"},
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_BOOL_OPTIONS = [
    {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
    {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
]


@dataclass
class PropertyDef:
    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[JsonDict] = field(default_factory=list)
    display_order: int = -1
    has_unique_value: bool = False
    hidden: bool = False
    form_field: bool = False
    hubspot_defined: bool = False
    read_only_value: bool = False
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    archived_at: str | None = None

    @property
    def is_boolean(self) -> bool:
        return self.type == "bool" or self.field_type == "booleancheckbox"

    def to_json(self) -> JsonDict:
        body: JsonDict = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": self.display_order,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "formField": self.form_field,
            "archived": self.archived_at is not None,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "dataSensitivity": "non_sensitive",
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
        }
        if self.hubspot_defined:
            body["hubspotDefined"] = True
        if self.archived_at is not None:
            body["archivedAt"] = self.archived_at
        return body


def _default(name: str, label: str, type_: str, field_type: str, **extra: Any) -> PropertyDef:
    return PropertyDef(
        name=name,
        label=label,
        type=type_,
        field_type=field_type,
        group_name="companyinformation",
        hubspot_defined=True,
        **extra,
    )


def _options(*values: str) -> list[JsonDict]:
    return [
        {
            "label": value.replace("_", " ").title(),
            "value": value,
            "displayOrder": i,
            "hidden": False,
        }
        for i, value in enumerate(values)
    ]


def default_properties() -> list[PropertyDef]:
    """A subset of HubSpot's default company properties; system ones are read-only."""
    return [
        _default("name", "Company name", "string", "text"),
        _default("domain", "Company Domain Name", "string", "text"),
        _default("website", "Website URL", "string", "text"),
        _default("description", "Description", "string", "textarea"),
        _default("phone", "Phone Number", "string", "phonenumber"),
        _default("city", "City", "string", "text"),
        _default("country", "Country/Region", "string", "text"),
        _default("numberofemployees", "Number of Employees", "number", "number"),
        _default("annualrevenue", "Annual Revenue", "number", "number"),
        _default(
            "industry", "Industry", "enumeration", "select",
            options=_options("TELECOMMUNICATIONS", "COMPUTER_SOFTWARE", "RETAIL", "OTHER"),
        ),
        _default(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio",
            options=_options("subscriber", "lead", "opportunity", "customer", "other"),
        ),
        _default("createdate", "Create Date", "datetime", "date", read_only_value=True),
        _default(
            "hs_lastmodifieddate", "Last Modified Date", "datetime", "date", read_only_value=True
        ),
        _default("hs_object_id", "Record ID", "number", "number", read_only_value=True),
        _default(
            "hs_merged_object_ids", "Merged Company IDs", "enumeration", "checkbox",
            read_only_value=True,
        ),
    ]  # fmt: skip


def default_groups() -> list[JsonDict]:
    return [
        {"name": "companyinformation", "label": "Company information", "displayOrder": -1,
         "archived": False},
    ]  # fmt: skip


class PropertyRegistry:
    """The company properties and property groups of one sandbox portal."""

    def __init__(self) -> None:
        self.properties: dict[str, PropertyDef] = {p.name: p for p in default_properties()}
        self.archived: dict[str, PropertyDef] = {}  # HubSpot's recycle bin for properties
        self.groups: dict[str, JsonDict] = {g["name"]: g for g in default_groups()}

    def get(self, name: str) -> PropertyDef | None:
        return self.properties.get(name)

    def require(self, name: str, *, archived: bool = False) -> PropertyDef:
        prop = (self.archived if archived else self.properties).get(name)
        if prop is None:
            raise ApiError(
                404,
                "OBJECT_NOT_FOUND",
                f"Unable to find property {name!r} for object type 0-2",
                context={"propertyName": [name]},
            )
        return prop

    def known(self, names: list[str] | None) -> list[str] | None:
        """The requested property names that exist: HubSpot leaves an unknown one out of
        its answer (a typo shows as a missing key, not as an unset value)."""
        return None if names is None else [name for name in names if name in self.properties]

    def unique_names(self) -> list[str]:
        return [p.name for p in self.properties.values() if p.has_unique_value]

    # -- definitions ---------------------------------------------------------------------

    def create(self, body: JsonDict) -> PropertyDef:
        check_definition(body, creating=True)
        name, type_, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        if name in self.properties:
            raise ApiError(
                409,
                "OBJECT_ALREADY_EXISTS",
                f"A property named '{name}' already exists.",
                context={"name": [name]},
            )
        if not _NAME.match(name):
            raise bad_request(f"Invalid property name {name!r}", name=[name])
        if field_type not in _FIELD_TYPES.get(type_, set()):
            raise bad_request(f"fieldType {field_type!r} is not valid for type {type_!r}")
        if body["groupName"] not in self.groups:
            raise bad_request(f"Property group {body['groupName']!r} does not exist")
        unique = optional_bool(body, "hasUniqueValue")
        if unique and len(self.unique_names()) >= MAX_UNIQUE_PROPERTIES:
            raise bad_request(
                f"An object may have at most {MAX_UNIQUE_PROPERTIES} unique value properties"
            )
        prop = PropertyDef(
            name=name,
            label=str(body["label"]),
            type=type_,
            field_type=field_type,
            group_name=str(body["groupName"]),
            description=str(body.get("description", "")),
            options=self._options(type_, field_type, body.get("options")),
            display_order=optional_int(body, "displayOrder", -1),
            has_unique_value=unique,
            hidden=optional_bool(body, "hidden"),
            form_field=optional_bool(body, "formField"),
        )
        self.archived.pop(name, None)
        self.properties[name] = prop
        return prop

    def update(self, name: str, body: JsonDict) -> PropertyDef:
        prop = self.require(name)
        check_definition(body, creating=False)
        if prop.hubspot_defined:
            raise bad_request(f"Property {name!r} is read-only and cannot be modified")
        if "hasUniqueValue" in body:
            raise bad_request("hasUniqueValue can only be set when a property is created")
        if "groupName" in body and body["groupName"] not in self.groups:
            raise bad_request(f"Property group {body['groupName']!r} does not exist")
        type_ = str(body.get("type", prop.type))
        field_type = str(body.get("fieldType", prop.field_type))
        if field_type not in _FIELD_TYPES.get(type_, set()):
            raise bad_request(f"fieldType {field_type!r} is not valid for type {type_!r}")
        if "options" in body or type_ != prop.type or field_type != prop.field_type:
            prop.options = self._options(type_, field_type, body.get("options", prop.options))
        prop.type, prop.field_type = type_, field_type
        for key, attr in (("label", "label"), ("description", "description"),
                          ("groupName", "group_name")):  # fmt: skip
            if key in body:
                setattr(prop, attr, str(body[key]))
        for key, attr in (("hidden", "hidden"), ("formField", "form_field")):
            if key in body:
                setattr(prop, attr, optional_bool(body, key))
        if "displayOrder" in body:
            prop.display_order = optional_int(body, "displayOrder", -1)
        prop.updated_at = now_iso()
        return prop

    def archive(self, name: str) -> None:
        """Move a property to the archive; HubSpot refuses its own and answers 404 for an
        unknown name. Companies keep their values, which no longer show."""
        prop = self.require(name)
        if prop.hubspot_defined:
            raise bad_request(f"Property {name!r} is defined by HubSpot and cannot be archived")
        del self.properties[name]
        prop.archived_at = now_iso()
        self.archived[name] = prop

    def archive_names(self, names: list[str]) -> None:
        """A batch archive: names already archived or unknown are passed over, as a batch
        archive of companies does; one of HubSpot's own refuses the whole batch."""
        for name in names:
            prop = self.properties.get(name)
            if prop is not None and prop.hubspot_defined:
                raise bad_request(f"Property {name!r} is defined by HubSpot and cannot be archived")
        for name in names:
            if name in self.properties:
                self.archive(name)

    @staticmethod
    def _options(type_: str, field_type: str, raw: object) -> list[JsonDict]:
        if type_ == "bool" or field_type == "booleancheckbox":
            return [dict(o) for o in _BOOL_OPTIONS] if not raw else _clean_options(raw)
        if type_ == "enumeration":
            options = _clean_options(raw)
            if not options:
                raise bad_request("An enumeration property needs at least one option")
            return options
        return []

    # -- groups --------------------------------------------------------------------------

    def create_group(self, body: JsonDict) -> JsonDict:
        _require_text(body)
        name, label = body.get("name"), body.get("label")
        if not name or not label:
            raise bad_request("A property group needs a name and a label")
        if name in self.groups:
            raise ApiError(
                409,
                "OBJECT_ALREADY_EXISTS",
                f"A property group named '{name}' already exists.",
                context={"name": [str(name)]},
            )
        group: JsonDict = {
            "name": str(name),
            "label": str(label),
            "displayOrder": optional_int(body, "displayOrder", -1),
            "archived": False,
        }
        self.groups[group["name"]] = group
        return group

    def require_group(self, name: str) -> JsonDict:
        group = self.groups.get(name)
        if group is None:
            raise ApiError(
                404, "OBJECT_NOT_FOUND", f"Unable to find property group {name!r}",
                context={"name": [name]},
            )  # fmt: skip
        return group

    def archive_group(self, name: str) -> None:
        """Remove a property group; HubSpot keeps its own and refuses one still in use."""
        self.require_group(name)
        if name == "companyinformation":
            raise bad_request(f"Property group {name!r} is defined by HubSpot")
        used = sorted(p.name for p in self.properties.values() if p.group_name == name)
        if used:
            raise bad_request(
                f"Property group {name!r} still holds properties: {', '.join(used)}",
                propertyName=used,
            )
        del self.groups[name]

    def update_group(self, name: str, body: JsonDict) -> JsonDict:
        group = self.require_group(name)
        _require_text(body)
        if "label" in body:
            group["label"] = str(body["label"])
        if "displayOrder" in body:
            group["displayOrder"] = optional_int(body, "displayOrder", -1)
        return group

    # -- values --------------------------------------------------------------------------

    def normalize(self, values: Mapping[str, object]) -> dict[str, str]:
        """Validated, string-normalised values; raises HubSpot's VALIDATION_ERROR otherwise."""
        result, issues = self._checked(values)
        if issues:
            raise validation_error(issues)
        return result

    def validate_batch(self, inputs: list[Mapping[str, object]]) -> None:
        """HubSpot refuses a whole batch write when any input has an invalid value: one
        VALIDATION_ERROR listing every bad value, and nothing written."""
        issues = [issue for values in inputs for issue in self._checked(values)[1]]
        if issues:
            raise validation_error(issues)

    def _checked(self, values: Mapping[str, object]) -> tuple[dict[str, str], list[PropertyIssue]]:
        if not isinstance(values, Mapping):
            raise bad_request("properties must be an object of property names to values")
        issues: list[PropertyIssue] = []
        result: dict[str, str] = {}
        for name, raw in values.items():
            prop = self.properties.get(name)
            if prop is None:
                issues.append(
                    PropertyIssue(
                        name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'
                    )
                )
            elif prop.read_only_value:
                issues.append(
                    PropertyIssue(
                        name, "READ_ONLY_VALUE", f'"{name}" is a read only property; '
                        "its value cannot be set.",
                    )
                )  # fmt: skip
            else:
                try:
                    result[name] = normalize_value(prop, raw)
                except InvalidValueError as exc:
                    issues.append(PropertyIssue(name, issue_code(prop), str(exc)))
        return result, issues


_TEXT_FIELDS = ("name", "label", "type", "fieldType", "groupName", "description",
                "calculationFormula", "currencyPropertyName", "referencedObjectType")  # fmt: skip
_FLAGS = ("hasUniqueValue", "hidden", "formField", "externalOptions", "showCurrencySymbol")
_ENUMS: dict[str, tuple[str, ...]] = {
    "type": tuple(_FIELD_TYPES),
    "fieldType": tuple(sorted({f for fields in _FIELD_TYPES.values() for f in fields})),
    "dataSensitivity": DATA_SENSITIVITIES,
    "numberDisplayHint": ("currency", "duration", "formatted", "percentage", "probability",
                          "unformatted"),
    "textDisplayHint": ("domain_name", "email", "ip_address", "multi_line", "phone_number",
                        "physical_address", "postal_code", "unformatted_single_line"),
}  # fmt: skip


def check_definition(body: JsonDict, *, creating: bool) -> None:
    """A property definition as typed, with the fields a creation requires."""
    _require_text(body)
    if creating:
        required = ("name", "label", "type", "fieldType", "groupName")
        missing = [key for key in required if not body.get(key)]
        if missing:
            raise bad_request(f"Missing required fields: {', '.join(missing)}", fields=missing)


def _require_text(body: JsonDict) -> None:
    """A definition's fields, where given, must have their documented JSON types: strings,
    booleans, 32-bit integers, closed enumerations and an array of options (HubSpot: 400)."""
    wrong = [key for key in _TEXT_FIELDS if key in body and not isinstance(body[key], str)]
    if wrong:
        raise bad_request(f"These fields must be strings: {', '.join(wrong)}", fields=wrong)
    for key in _FLAGS:
        if key in body:
            optional_bool(body, key)
    for key, allowed in _ENUMS.items():
        optional_enum(body, key, allowed)
    optional_int(body, "displayOrder", -1)
    if "options" in body:
        if not isinstance(body["options"], list):
            raise bad_request(
                "`options` must be an array of objects", options=[str(body["options"])]
            )
        _clean_options(body["options"])


def _clean_options(raw: object) -> list[JsonDict]:
    """Options as typed (OptionInput): `label` and `value` strings, optional `hidden`,
    `displayOrder` and `description`."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        raise bad_request("`options` must be an array of objects", options=[str(raw)])
    options = []
    for i, item in enumerate(raw):
        value = required_string(item, "value", "Each option")
        options.append(
            {
                "label": required_string(item, "label", "Each option"),
                "value": value,
                "displayOrder": optional_int(item, "displayOrder", i),
                "hidden": optional_bool(item, "hidden"),
            }
        )
        optional_string(item, "description")
    return options
