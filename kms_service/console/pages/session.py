"""Signing in and out of the console (docs/console.md, "Safety")."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import (
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from kms_service.console import guard
from kms_service.console.actions import services
from kms_service.console.blueprint import (
    console,
)
from kms_service.console.safety import SIGV4_SIGN_IN, TOKEN_SIGN_IN
from kms_service.wire.auth.credentials import CredentialStore


# --- sign-in --------------------------------------------------------------------------------
@console.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> BaseResponse | str:
    rule = guard.access()
    if request.method == "GET":
        return render_template("sign_in.html", mode=rule.sign_in, next=_safe_next())
    principal, account = _check_sign_in(rule.sign_in)
    if principal is None:
        return guard.refuse(403, "Sign-in failed", "Those credentials are not valid.")
    session.clear()  # a new session: nothing from before the sign-in carries over
    session["principal"] = principal
    if account:
        # sigv4: the console acts as this identity, in its account only.
        session["identity_arn"] = principal
        session["identity_account"] = account
    guard.csrf_token()
    return redirect(_safe_next())


def _check_sign_in(mode: str) -> tuple[str | None, str | None]:
    if mode == TOKEN_SIGN_IN:
        if guard.console_secrets().token_matches(request.form.get("token", "")):
            # The token holder acts as the root of whichever account the pages show.
            return "console token", None
        return None, None
    if mode == SIGV4_SIGN_IN:
        settings = services().settings
        if settings.credentials_file is None:
            return None, None
        store = CredentialStore.load(settings.credentials_file, settings.account_id)
        credential = store.lookup(request.form.get("access_key_id", "").strip())
        offered = request.form.get("secret_access_key", "").encode("utf-8")
        # Compared even for an unknown key id, so the answer takes as long either way.
        expected = (credential.secret_access_key if credential else "\x00").encode("utf-8")
        if credential is not None and hmac.compare_digest(offered, expected):
            return credential.principal_arn, credential.account_id
        return None, None
    return None, None


def _safe_next() -> str:
    """Where to go after signing in: a console path only (never another site)."""
    target = request.values.get("next") or url_for("console.keys")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/"):
        return url_for("console.keys")
    return target


@console.post("/sign-out")
def sign_out() -> BaseResponse:
    session.clear()
    return redirect(url_for("console.sign_in"))
