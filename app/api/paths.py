"""Path parameters that must look like what they name before a route takes them.

A customer id is a WARP customer's UUID (app/warp/connector.py `canonical_id`). Matched by a
convertor, a segment that cannot be one (`queue`, `not-a-uuid`) matches no `{customer_id}`
route: `GET /v1/sync/customers/queue` then finds the static `POST …/queue` route and is a 405
with `Allow: POST`, not a 404 "customer queue does not exist". The convertor hands the route
the id in its canonical form, whichever spelling was sent (upper case, no hyphens)."""

from __future__ import annotations

import uuid

from starlette.convertors import Convertor, register_url_convertor

_HEX = "[0-9a-fA-F]"


class CustomerIdConvertor(Convertor[str]):
    regex = f"{_HEX}{{8}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{12}}"

    def convert(self, value: str) -> str:
        return str(uuid.UUID(value))

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("customer_id", CustomerIdConvertor())

# Use in a route's path: f"/v1/sync/customers/{CUSTOMER_ID}/queue".
CUSTOMER_ID = "{customer_id:customer_id}"
