"""The console's Flask blueprint and what every page shares: the request guard and security
headers (:mod:`kms_service.console.guard`), the health strip and clock, the account and region
the pages show, the confirmation page, date filters. The pages themselves are in
:mod:`kms_service.console.pages`.
"""

from __future__ import annotations

import re
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    render_template,
    request,
    session,
)
from werkzeug.wrappers import Response as BaseResponse

from kms_service.console import guard
from kms_service.console.actions import Outcome, services
from kms_service.console.health import clock_view, health_items
from kms_service.operations import RequestScope
from kms_service.operations.shared_settings import SharedSettings

console = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)
console.before_request(guard.check_request)
console.after_request(guard.add_security_headers)
console.app_context_processor(guard.template_globals)

RECENT_LIMIT = 500
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def shared_settings() -> SharedSettings:
    found: SharedSettings = current_app.extensions["mock_kms.shared_settings"]
    return found


@console.context_processor
def _page_context() -> dict[str, Any]:
    if request.endpoint in ("console.static",):
        return {}
    svc = services()
    return {
        "health": health_items(svc, shared_settings()),
        "clock": clock_view(svc, shared_settings()),
        "dev_endpoints": svc.settings.dev_endpoints,
        "principal": session.get("principal") or "",
    }


# --- scope: which account and region the pages show ------------------------------------------
def current_scope() -> RequestScope:
    """The account and region the user picked (query, then session, then the defaults) and
    the principal the console acts as: the signed-in identity in ``sigv4`` mode, else the
    account's root."""
    svc = services()
    account = request.args.get("account") or session.get("account") or svc.settings.account_id
    region = request.args.get("region") or session.get("region") or svc.settings.region
    fixed_account = session.get("identity_account")
    if isinstance(fixed_account, str) and fixed_account:
        account = fixed_account
    if not (str(account).isdigit() and len(str(account)) == 12):
        account = svc.settings.account_id
    if not _REGION.match(str(region)):
        region = svc.settings.region
    session["account"], session["region"] = account, region
    identity = session.get("identity_arn")
    principal = identity if isinstance(identity, str) else f"arn:aws:iam::{account}:root"
    return RequestScope(str(account), str(region), principal)


def scope_for(account: str, region: str) -> RequestScope:
    scope = current_scope()
    if account != scope.account_id or region != scope.region:
        fixed = session.get("identity_account")
        if fixed and fixed != account:
            abort(404)
        session["account"], session["region"] = account, region
        scope = current_scope()
    return scope


def confirm_page(title: str, question: str, action_url: str, cancel_url: str | None = None) -> str:
    """The confirmation page: the same form again, with ``confirmed=yes``."""
    fields = [
        (name, value)
        for name, value in request.form.items(multi=True)
        if name not in (guard.CSRF_FIELD, "confirmed")
    ]
    return render_template(
        "confirm.html",
        title=title,
        question=question,
        action_url=action_url,
        cancel_url=cancel_url,
        fields=fields,
    )


def flash_outcome(outcome: Outcome) -> None:
    flash(outcome.summary(), "ok" if outcome.ok else "error")


def time_label(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


@console.app_template_filter("short_datetime")
def _short_datetime_filter(value: float | None) -> str:
    """To the minute, for tables (the One-key page shows seconds)."""
    if value is None:
        return ""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M")


@console.app_template_filter("datetime")
def _datetime_filter(value: float | None) -> str:
    if value is None:
        return ""
    return time_label(float(value)) + " UTC"


@console.get("/<path:unknown>")
def unknown_page(unknown: str) -> BaseResponse:
    """Anything else under /console/: the console's own 404 page, with its headers."""
    return guard.refuse(404, "Not found", "There is nothing here.")


@console.errorhandler(404)
def _not_found(_: Exception) -> BaseResponse:
    return guard.refuse(404, "Not found", "There is nothing here.")
