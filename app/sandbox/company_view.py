"""A company as a person sees it in the CRM, read-only: the sandbox's stand-in for HubSpot's
record page, where the console's "Open in HubSpot" leads in demo mode. HubSpot's API would
want a bearer token a browser does not send; this page is one of the sandbox's own routes
(loopback or a token, like the others) and shows every property with its last change and
source. Edits go through `PATCH /_sandbox/companies/{id}`, as the README's tour shows."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.sandbox.clock import iso_from_ms
from app.sandbox.request_io import sandbox_of

STYLE = (
    "body{font:15px system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1f2933}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .6rem;"
    "border-bottom:1px solid #d9e2ec}th{background:#f0f4f8}.muted{color:#627d98}"
)
# No script, no outside resources: the page shows text and nothing else.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def view_company(request: Request) -> Response:
    company_id = request.path_params["company_id"]
    company = sandbox_of(request).companies.find(company_id, archived=False)
    if company is None:
        company = sandbox_of(request).companies.find(company_id, archived=True)
    if company is None:
        body = (
            f"<!doctype html><title>Not found</title><style>{STYLE}</style>"
            f"<h1>No company {escape(company_id)} in the sandbox</h1>"
        )
        return HTMLResponse(body, status_code=404, headers=HEADERS)
    rows = []
    for name in company.names():
        versions = company.versions(name)
        value = company.value(name)
        latest = versions[0] if versions else None
        source = (
            f"{escape(latest.source_type)} {iso_from_ms(latest.timestamp_ms)}"
            if latest is not None
            else ""
        )
        rows.append(
            f"<tr><th scope=row>{escape(name)}</th>"
            f"<td>{escape(value) if value is not None else '<span class=muted>(blank)</span>'}"
            f"</td><td class=muted>{source}</td></tr>"
        )
    title = escape(company.value("name") or f"Company {company.id}")
    state = " (archived)" if company.archived else ""
    body = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{title} · sandbox</title>"
        f"<style>{STYLE}</style><h1>{title}{state}</h1>"
        f"<p class=muted>Company {escape(company.id)} in hubsync's built-in HubSpot sandbox "
        "(read-only; this stands in for HubSpot's record page).</p>"
        "<table><thead><tr><th>Property</th><th>Value</th><th>Last change</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></html>"
    )
    return HTMLResponse(body, headers=HEADERS)
