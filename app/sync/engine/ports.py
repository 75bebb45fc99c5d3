"""What the sync core needs from HubSpot; `app.hubspot.client.HubSpotClient` provides it, and
tests may hand in anything else that does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.hubspot.models import BatchResult, UpdateInput, UpsertInput


class HubSpotPort(Protocol):
    async def batch_read_companies(
        self,
        ids: Sequence[str],
        properties: Sequence[str],
        id_property: str | None = None,
        *,
        properties_with_history: Sequence[str] = (),
    ) -> BatchResult: ...

    async def batch_upsert_companies(
        self, inputs: Sequence[UpsertInput], id_property: str = "warp_ban"
    ) -> BatchResult: ...

    async def batch_update_companies(self, inputs: Sequence[UpdateInput]) -> BatchResult: ...
