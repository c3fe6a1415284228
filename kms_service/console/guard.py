"""Every console request passes here first: the Host check, the sign-in, the CSRF token; and
every answer leaves with the security headers (docs/console.md, "Safety")."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Response, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from kms_service.console.safety import (
    NO_SIGN_IN,
    ConsoleAccess,
    ConsoleSecrets,
    is_local_host_header,
)

ACCESS_EXTENSION = "mock_kms.console.access"
SECRETS_EXTENSION = "mock_kms.console.secrets"
CSRF_FIELD = "csrf_token"
#: Endpoints reachable before signing in.
_OPEN_ENDPOINTS = frozenset({"console.sign_in", "console.static"})
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def access() -> ConsoleAccess:
    found: ConsoleAccess = current_app.extensions[ACCESS_EXTENSION]
    return found


def console_secrets() -> ConsoleSecrets:
    found: ConsoleSecrets = current_app.extensions[SECRETS_EXTENSION]
    return found


def csrf_token() -> str:
    """This session's CSRF token, created on first use."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def signed_in() -> bool:
    return access().sign_in == NO_SIGN_IN or bool(session.get("principal"))


def refuse(status: int, title: str, message: str) -> Response:
    body = render_template("refused.html", title=title, message=message)
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def check_request() -> BaseResponse | None:
    """``before_request`` of the console blueprint: None lets the request through."""
    rule = access()
    if rule.sign_in == NO_SIGN_IN and not is_local_host_header(request.host):
        # No sign-in is only safe for a browser on this machine that named it as such.
        return refuse(
            403,
            "Forbidden",
            "This console has no sign-in and answers only to localhost or a loopback address.",
        )
    if request.method not in ("GET", "HEAD"):
        offered = request.form.get(CSRF_FIELD, "")
        expected = session.get(CSRF_FIELD)
        if not isinstance(expected, str) or not hmac.compare_digest(
            offered.encode("utf-8"), expected.encode("utf-8")
        ):
            return refuse(
                403,
                "Forbidden",
                "The request carried no valid CSRF token. Reload the page and try again.",
            )
    if request.endpoint not in _OPEN_ENDPOINTS and not signed_in():
        return redirect(url_for("console.sign_in", next=request.full_path))
    return None


def add_security_headers(response: BaseResponse) -> BaseResponse:
    """``after_request``: a strict CSP (no inline script or style), no framing, no caching."""
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        headers["Cache-Control"] = "no-store"
    return response


def template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "console_access": access(), "signed_in": signed_in}
