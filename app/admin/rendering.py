"""What every console page shares: the console's state, the session check, rendering with
the paused-directions banner and the CSRF token, and redirects with a notice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from app.admin.access import SESSION_COOKIE, OneTimeLogin, Session, SessionSigner
from app.admin.sessions import is_live
from app.api.deps import app_context
from app.context import AppContext
from app.errors import HubsyncError
from app.store.pauses import LABELS, paused_directions

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
# The sandbox's read-only page of the company (its API would want a bearer token).
SANDBOX_COMPANY_URL = "/_hubspot/_sandbox/companies/{id}/view"
HUBSPOT_COMPANY_URL = "https://app.hubspot.com/contacts/{portal}/record/0-2/{id}"

# Notices shown after an action: codes in the redirect, texts here (never echoed input).
NOTICES = {
    "paused": "{direction} is paused: nothing is written that way; its work waits in the queue.",
    "resumed": "{direction} is running again.",
    "already": "Nothing changed: {direction} already was in that state.",
    "resolved": "Conflict {n} resolved; the value was written to both sides.",
    "resolved-queued": "Conflict {n} resolved; the sync is queued (a direction is paused "
    "or the customer was busy).",
    "retried": "{n} job(s) queued again.",
    "reprocessed": "{n} webhook event(s) queued again.",
    "synced": "Job {n} queued to sync this customer now.",
    "rules": "Rules saved.",
    "scope": "Scope saved.",
}


@dataclass
class AdminState:
    signer: SessionSigner
    templates: Jinja2Templates
    one_time: OneTimeLogin | None
    https_only: bool


class NotSignedInError(HubsyncError):
    """No valid session: pages redirect to the login, actions are refused."""


def admin_state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


async def session_of(request: Request) -> Session | None:
    """The request's session: a cookie signed by us whose session is still live on the
    server (not logged out, not signed out everywhere, not expired)."""
    session = admin_state(request).signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None or not await is_live(app_context(request).engine, session.token):
        return None
    return session


View = Callable[[Request, Session], Awaitable[Response]]


def signed_in(view: View) -> Callable[[Request], Awaitable[Response]]:
    async def guarded(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            raise NotSignedInError
        return await view(request, session)

    guarded.__name__ = view.__name__
    guarded.__doc__ = view.__doc__
    return guarded


async def not_signed_in(request: Request, _exc: Exception) -> Response:
    if request.headers.get("HX-Request") == "true":
        # A fragment polled after the session ended: htmx swaps nothing on a 401 and
        # follows HX-Redirect, so the whole page goes to the login, not into a figure.
        page = urlsplit(request.headers.get("HX-Current-URL", "")).path
        target = "/admin/login?" + urlencode({"next": safe_next(page)})
        return HTMLResponse("Sign in first.", status_code=401, headers={"HX-Redirect": target})
    if request.method == "GET":
        target = "/admin/login?" + urlencode({"next": request.url.path})
        return RedirectResponse(target, status_code=303)
    return HTMLResponse("Sign in first.", status_code=401)


def csrf_token(request: Request) -> str:
    issue: Callable[[], str] | None = request.scope.get("csrftoken")
    return issue() if issue is not None else ""


async def render(
    request: Request,
    session: Session | None,
    template: str,
    status_code: int = 200,
    **context: Any,
) -> Response:
    paused: dict[str, Any] = {}
    if session is not None:
        async with app_context(request).engine.connect() as connection:
            paused = await paused_directions(connection)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    if notice is not None:
        direction = LABELS.get(request.query_params.get("direction", ""), "")
        number = request.query_params.get("n", "")
        notice = notice.format(direction=direction, n=number if number.isdigit() else "")
    return admin_state(request).templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "paused": paused,
            "labels": LABELS,
            "csrftoken": csrf_token(request),
            "notice": notice,
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )


def back_to(path: str, notice: str | None = None, **params: Any) -> RedirectResponse:
    query = {"notice": notice, **params} if notice else params
    clean = {k: v for k, v in query.items() if v is not None}
    return RedirectResponse(path + ("?" + urlencode(clean) if clean else ""), status_code=303)


def safe_next(value: str | None, default: str = "/admin/") -> str:
    """Only paths inside the console: never an open redirect."""
    if value and value.startswith("/admin") and "//" not in value and "\\" not in value:
        return value
    return default


def company_url(context: AppContext, company_id: str | None) -> str | None:
    if not company_id:
        return None
    if context.settings.sandbox_mode:
        return SANDBOX_COMPANY_URL.format(id=company_id)
    portal = context.settings.hubspot_portal_id
    if portal is None:
        return None
    return HUBSPOT_COMPANY_URL.format(portal=portal, id=company_id)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
