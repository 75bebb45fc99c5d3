"""The console as an ASGI app mounted at `/admin`: its routes, the login, and the layers
around it — CSRF on every form (asgi-csrf's signed double-submit token), then security
headers on every answer."""

from __future__ import annotations

from typing import Any

from asgi_csrf import asgi_csrf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from app.admin import (
    actions,
    customer_page,
    dashboard_view,
    job_page,
    pages,
    reconciliation_pages,
)
from app.admin.access import SESSION_COOKIE, SESSION_SECONDS, OneTimeLogin, Session, SessionSigner
from app.admin.headers import SecurityHeaders
from app.admin.rendering import (
    STATIC_DIR,
    TEMPLATES_DIR,
    AdminState,
    NotSignedInError,
    admin_state,
    client_address,
    not_signed_in,
    render,
    safe_next,
    session_of,
    signed_in,
)
from app.admin.rules_form import in_words
from app.admin.sessions import (
    begin_login,
    end_every_session,
    end_session,
    redeem_login_link,
    start_session,
)
from app.api.deps import app_context
from app.api.errors import ApiError, handle_api_error
from app.api.paths import CUSTOMER_ID
from app.settings import Settings
from app.store.admin_audit import record_action
from app.sync.operator.preview import REFRESH_DEFAULT

MOUNT = "/admin"


async def login_page(request: Request) -> Response:
    if await session_of(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return await render(
        request, None, "login.html", next=safe_next(request.query_params.get("next")), error=None
    )


async def login(request: Request) -> Response:
    state = admin_state(request)
    form = await request.form()
    target = safe_next(str(form.get("next", "")))
    typed = form.get("name")
    name = str(typed) if isinstance(typed, str) else ""
    attempt = await begin_login(
        app_context(request).engine, client=client_address(request), name=name
    )
    if attempt is None:
        return await render(
            request,
            None,
            "login.html",
            429,
            next=target,
            error="Too many attempts from your address or for this name; wait a minute.",
        )
    password = form.get("password")
    if not isinstance(password, str) or not state.signer.password_matches(password):
        return await render(
            request, None, "login.html", 401, next=target, error="That password is not right."
        )
    await attempt.succeeded()
    return await _signed_in_as(request, name, target)


async def login_once(request: Request) -> Response:
    """A one-time link: the embedded default's, printed at start-up (held by this process),
    or one `hubsync admin link` minted (held in the database, so any process takes it)."""
    state = admin_state(request)
    token = request.query_params.get("token", "")
    attempt = await begin_login(
        app_context(request).engine, client=client_address(request), name=None
    )
    if attempt is None:
        return await render(request, None, "login.html", 429, next="/admin/", error="Wait.")
    at_start = state.one_time is not None and state.one_time.redeem(token)
    if not at_start and not await redeem_login_link(app_context(request).engine, token):
        return await render(
            request,
            None,
            "login.html",
            401,
            next="/admin/",
            error="That login link was used already or has expired; sign in with the password.",
        )
    await attempt.succeeded()
    return await _signed_in_as(request, "first-login", "/admin/")


async def _signed_in_as(request: Request, name: str, target: str) -> Response:
    state = admin_state(request)
    engine = app_context(request).engine
    cookie = await start_session(engine, state.signer, name, client=client_address(request))
    session = state.signer.read(cookie)
    assert session is not None  # noqa: S101 -- just issued
    async with engine.begin() as connection:
        await record_action(
            connection,
            actor=session.who,
            action="admin.login",
            detail={"client": client_address(request)},
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path=MOUNT,
        httponly=True,
        samesite="lax",
        secure=state.https_only or request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    """Ends this session on the server (a copy of its cookie opens nothing afterwards)."""
    session = await session_of(request)
    if session is not None:
        engine = app_context(request).engine
        await end_session(engine, session.token)
        async with engine.begin() as connection:
            await record_action(connection, actor=session.who, action="admin.logout")
    return _signed_out()


@signed_in
async def sign_out_everywhere(request: Request, session: Session) -> Response:
    """Ends every console session, this one included: after a cookie may have leaked."""
    engine = app_context(request).engine
    ended = await end_every_session(engine)
    async with engine.begin() as connection:
        await record_action(
            connection, actor=session.who, action="admin.sessions.revoke", detail={"ended": ended}
        )
    return _signed_out()


def _signed_out() -> Response:
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=MOUNT, httponly=True, samesite="lax")
    return response


def build_admin(settings: Settings, *, one_time: OneTimeLogin | None = None) -> ASGIApp:
    """The console; only called when HUBSYNC_ADMIN_PASSWORD and HUBSYNC_SECRET_KEY are set."""
    assert settings.admin_password is not None  # noqa: S101 -- checked by the caller
    assert settings.secret_key is not None  # noqa: S101
    https_only = bool(settings.public_url and settings.public_url.startswith("https://"))
    routes = [
        Route("/", dashboard_view.dashboard, methods=["GET"]),
        Route("/fragments/figures", dashboard_view.figures_fragment, methods=["GET"]),
        Route("/fragments/charts", dashboard_view.charts_fragment, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/login/once", login_once, methods=["GET"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/sessions/revoke", sign_out_everywhere, methods=["POST"]),
        Route("/customers", pages.customers, methods=["GET"]),
        Route(f"/customers/{CUSTOMER_ID}", customer_page.customer, methods=["GET"]),
        Route(
            f"/customers/{CUSTOMER_ID}/read-hubspot",
            customer_page.read_hubspot_now,
            methods=["POST"],
        ),
        Route(f"/customers/{CUSTOMER_ID}/sync", actions.sync_now, methods=["POST"]),
        Route("/conflicts", pages.conflicts, methods=["GET"]),
        Route("/conflicts/{conflict_id}/resolve", actions.resolve, methods=["POST"]),
        Route("/failed", pages.failed, methods=["GET"]),
        Route("/failed/retry", actions.retry_failed, methods=["POST"]),
        Route("/events", pages.events, methods=["GET"]),
        Route("/events/reprocess", actions.reprocess_events, methods=["POST"]),
        Route("/jobs", pages.jobs, methods=["GET"]),
        Route("/jobs/{job_id}", job_page.job, methods=["GET"]),
        Route("/rules", pages.rules, methods=["GET"]),
        Route("/rules", actions.save_rules, methods=["POST"]),
        Route("/scope", pages.scope, methods=["GET"]),
        Route("/scope", actions.save_scope, methods=["POST"]),
        Route("/reconciliation", reconciliation_pages.reconciliation, methods=["GET"]),
        Route("/reconciliation/run", reconciliation_pages.run_now, methods=["POST"]),
        Route(
            "/reconciliation/{run_id}/report.csv",
            reconciliation_pages.report_csv,
            methods=["GET"],
        ),
        Route("/audit", pages.audit, methods=["GET"]),
        Route("/directions/{direction}/{verb}", actions.change_direction, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    console = Starlette(
        routes=routes,
        # A query parameter the console cannot use is the API's 422 naming it.
        exception_handlers={NotSignedInError: not_signed_in, ApiError: handle_api_error},
    )
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    templates.env.globals["in_words"] = in_words
    templates.env.globals["refresh_default"] = REFRESH_DEFAULT  # the Preview's HubSpot read
    console.state.admin = AdminState(
        signer=SessionSigner(settings.secret_key, settings.admin_password),
        templates=templates,
        one_time=one_time,
        https_only=https_only,
    )
    protected: Any = asgi_csrf(
        console,
        signing_secret="csrf:" + settings.secret_key.reveal(),
        cookie_path=MOUNT,
        cookie_secure=https_only,
        # A form post without any cookie is still checked on the login (login CSRF).
        always_protect={f"{MOUNT}/login"},
    )
    return SecurityHeaders(protected)
