"""The shapes of the companies API's request bodies, checked whole before anything is written.

HubSpot refuses a batch in which any input breaks its document's types (a number where an id
string belongs, `associations` that is not an array, an input without `properties`) with one
400 for the whole request, so these run over every input before the first is applied.
"""

from __future__ import annotations

from typing import Any

from app.sandbox.errors import bad_request
from app.sandbox.fields import object_id, optional_int, optional_string

MAX_BATCH_INPUTS = 100
ASSOCIATION_CATEGORIES = ("HUBSPOT_DEFINED", "INTEGRATOR_DEFINED", "USER_DEFINED", "WORK")


def batch_inputs(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise bad_request("The request body needs an `inputs` array")
    inputs: list[Any] = body["inputs"]
    if len(inputs) > MAX_BATCH_INPUTS:
        raise bad_request(
            f"Batch input size {len(inputs)} exceeds the maximum of {MAX_BATCH_INPUTS}",
            inputs=[str(len(inputs))],
        )
    return inputs


NOTHING_TO_UPDATE = "No properties found to update, please provide at least one."


def properties_to_update(item: Any) -> dict[str, Any]:
    """A PATCH's `properties`: HubSpot answers a body without any with its 400."""
    properties = input_properties(item, required=False)
    if not properties:
        raise bad_request(NOTHING_TO_UPDATE)
    return properties


def input_properties(item: Any, *, required: bool = True) -> dict[str, Any]:
    """An input's `properties` object (HubSpot's documents require it on every write)."""
    if not isinstance(item, dict):
        raise bad_request("Each input must be a JSON object")
    if "properties" not in item and not required:
        return {}
    properties = item.get("properties")
    if not isinstance(properties, dict):
        raise bad_request("Each input needs a `properties` object", properties=[str(properties)])
    return properties


def create_input(item: Any) -> dict[str, Any]:
    """One object to create: `properties`, optional `associations` and `objectWriteTraceId`."""
    input_properties(item)
    checked: dict[str, Any] = item
    optional_string(checked, "objectWriteTraceId")
    if "associations" in checked:
        _associations(checked["associations"])
    return checked


def write_input(item: Any) -> dict[str, Any]:
    """One object to update or upsert: an `id` string, `properties`, an optional
    `idProperty` and `objectWriteTraceId`."""
    input_properties(item)
    checked: dict[str, Any] = item
    object_id(checked.get("id"))
    optional_string(checked, "idProperty")
    optional_string(checked, "objectWriteTraceId")
    return checked


def id_input(item: Any) -> str:
    """One `{"id": "..."}` of a batch read or archive."""
    if not isinstance(item, dict):
        raise bad_request("Each input must be a JSON object with an `id`")
    return object_id(item.get("id"))


def _associations(raw: object) -> None:
    """`associations`, when given: an array of {to: {id}, types: [{associationCategory,
    associationTypeId}]}. The sandbox holds no other objects, so they are checked, not kept."""
    if not isinstance(raw, list):
        raise bad_request("`associations` must be an array", associations=[str(raw)])
    for association in raw:
        to = association.get("to") if isinstance(association, dict) else None
        types = association.get("types") if isinstance(association, dict) else None
        if not isinstance(to, dict) or not isinstance(types, list):
            raise bad_request(
                "Each of `associations` needs `to` (an object) and `types` (an array)",
                associations=[str(association)],
            )
        object_id(to.get("id"), "associations.to.id")
        for spec in types:
            category = spec.get("associationCategory") if isinstance(spec, dict) else None
            if category not in ASSOCIATION_CATEGORIES:
                raise bad_request(
                    "Each of `associations[].types` needs an associationCategory of "
                    f"{', '.join(ASSOCIATION_CATEGORIES)}",
                    associations=[str(spec)],
                )
            if "associationTypeId" not in spec:
                raise bad_request("Each of `associations[].types` needs an associationTypeId")
            optional_int(spec, "associationTypeId", 0)
