"""HubSpot's account information API: the portal the token belongs to."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.sandbox.request_io import sandbox_of


async def account_details(request: Request) -> JSONResponse:
    portal_id = sandbox_of(request).config.portal_id
    return JSONResponse(
        {
            "portalId": portal_id,
            "accountType": "DEVELOPER_TEST",
            "timeZone": "Etc/UTC",
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": "+00:00",
            "utcOffsetMilliseconds": 0,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }
    )


def account_routes() -> list[Route]:
    return [Route("/account-info/v3/details", account_details, methods=["GET"])]
