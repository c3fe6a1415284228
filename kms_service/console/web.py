"""The console's pages: a Flask blueprint rendering Jinja2 templates (templates/) with plain
CSS and one small script for the live requests table (static/), all served by mock-kms.

Reads go through the store and the operations layer (:mod:`kms_service.console.keys`); every
change goes through the KMS operations (:mod:`kms_service.console.actions`) behind a
confirmation page, or, for the clock and the reset, through the developer endpoints' code.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from kms_service.admin.durations import parse_duration
from kms_service.admin.lifecycle import move_clock, sweep_due_lifecycle, wipe_state
from kms_service.admin.shared_settings import SharedSettings
from kms_service.console import guard
from kms_service.console.actions import Outcome, perform, services
from kms_service.console.feed import FeedEntry, read_recent
from kms_service.console.health import clock_view, health_items
from kms_service.console.keys import (
    SORT_COLUMNS,
    KeyFilter,
    find_key,
    key_detail,
    key_rows,
    scopes,
)
from kms_service.console.protection import classify
from kms_service.console.safety import SIGV4_SIGN_IN, TOKEN_SIGN_IN, state_directory
from kms_service.domain.key_states import KeyState
from kms_service.operations import RequestScope
from kms_service.wire.auth import CredentialStore
from kms_service.wire.schemas import KEY_SPECS, KEY_USAGES

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


def _shared() -> SharedSettings:
    found: SharedSettings = current_app.extensions["mock_kms.shared_settings"]
    return found


@console.context_processor
def _page_context() -> dict[str, Any]:
    if request.endpoint in ("console.static",):
        return {}
    svc = services()
    return {
        "health": health_items(svc, _shared()),
        "clock": clock_view(svc, _shared()),
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


def _scope_for(account: str, region: str) -> RequestScope:
    scope = current_scope()
    if account != scope.account_id or region != scope.region:
        fixed = session.get("identity_account")
        if fixed and fixed != account:
            abort(404)
        session["account"], session["region"] = account, region
        scope = current_scope()
    return scope


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


# --- keys -----------------------------------------------------------------------------------
@console.get("/")
def index() -> BaseResponse:
    return redirect(url_for("console.keys"))


@console.get("/keys")
def keys() -> str:
    scope = current_scope()
    args = request.args
    wanted = KeyFilter(
        state=args.get("state", ""),
        kind=args.get("kind", ""),
        alias=args.get("alias", ""),
        tag=args.get("tag", ""),
        search=args.get("q", "").strip(),
        sort=args.get("sort", "created") if args.get("sort") in SORT_COLUMNS else "created",
        descending=args.get("dir") == "desc",
    )
    svc = services()
    return render_template(
        "keys.html",
        scope=scope,
        scopes=scopes(svc),
        rows=key_rows(svc, scope.account_id, scope.region, wanted),
        wanted=wanted,
        states=[state.value for state in KeyState],
        sort_columns=SORT_COLUMNS,
    )


@console.get("/keys/<account>/<region>/<key_id>")
def key_page(account: str, region: str, key_id: str) -> str:
    scope = _scope_for(account, region)
    svc = services()
    key = find_key(svc, account, region, key_id)
    if key is None:
        abort(404)
    detail = key_detail(svc, key, scope)
    recent = [
        e
        for e in read_recent(state_directory(svc.settings), svc.settings.region)
        if e.key_arn == key.arn
    ]
    return render_template(
        "key.html",
        scope=scope,
        detail=detail,
        recent=recent[:50],
        key_states=KeyState,
    )


# --- creating a key --------------------------------------------------------------------------
def creatable_specs() -> list[str]:
    """The key specs the default backend declares it can create, in the API's order: read
    from the backend's capabilities and the CreateKey schema, never a fixed list."""
    svc = services()
    supported = svc.backend(svc.default_backend).capabilities.key_specs
    return [spec for spec in KEY_SPECS if spec in supported]


@console.get("/keys/new")
def new_key() -> str:
    return render_template(
        "new_key.html",
        scope=current_scope(),
        specs=creatable_specs(),
        usages=KEY_USAGES,
    )


@console.post("/keys/new")
def create_key() -> BaseResponse | str:
    scope = current_scope()
    form = request.form
    params: dict[str, Any] = {
        "KeySpec": form.get("key_spec") or "SYMMETRIC_DEFAULT",
        "Description": form.get("description", ""),
    }
    if form.get("key_usage"):
        params["KeyUsage"] = form["key_usage"]
    if form.get("multi_region") == "yes":
        params["MultiRegion"] = True
    tag_key = form.get("tag_key", "").strip()
    if tag_key:
        params["Tags"] = [{"TagKey": tag_key, "TagValue": form.get("tag_value", "")}]
    if form.get("confirmed") != "yes":
        return _confirm(
            "Create a key",
            f"Create a {params['KeySpec']} key in account {scope.account_id}, {scope.region}?",
            url_for("console.create_key"),
        )
    outcome = perform("CreateKey", params, scope)
    _flash(outcome)
    if outcome.ok and outcome.result is not None:
        key_id = outcome.result["KeyMetadata"]["KeyId"]
        return redirect(
            url_for(
                "console.key_page", account=scope.account_id, region=scope.region, key_id=key_id
            )
        )
    return redirect(url_for("console.new_key"))


# --- actions on one key ----------------------------------------------------------------------
@dataclass(frozen=True)
class KeyAction:
    operation: str
    question: str


KEY_ACTIONS = {
    "enable": KeyAction("EnableKey", "Enable key {key}?"),
    "disable": KeyAction("DisableKey", "Disable key {key}? It refuses cryptography until enabled."),
    "rotate": KeyAction("RotateKeyOnDemand", "Rotate key {key} now (new key material)?"),
    "enable-rotation": KeyAction(
        "EnableKeyRotation", "Turn on automatic rotation of {key} every {period} days?"
    ),
    "disable-rotation": KeyAction("DisableKeyRotation", "Turn off automatic rotation of {key}?"),
    "schedule-deletion": KeyAction(
        "ScheduleKeyDeletion", "Schedule key {key} for deletion in {window} days?"
    ),
    "cancel-deletion": KeyAction("CancelKeyDeletion", "Cancel the deletion of key {key}?"),
    "description": KeyAction("UpdateKeyDescription", "Set the description of {key}?"),
    "tag": KeyAction("TagResource", "Set tag {tag_key} on {key}?"),
    "untag": KeyAction("UntagResource", "Remove tag {tag_key} from {key}?"),
}


def _key_params(action: str, key_id: str) -> dict[str, Any]:
    form = request.form
    params: dict[str, Any] = {"KeyId": key_id}
    if action == "enable-rotation":
        params["RotationPeriodInDays"] = _integer(form.get("period", "365"))
    elif action == "schedule-deletion":
        params["PendingWindowInDays"] = _integer(form.get("window", "30"))
    elif action == "description":
        params["Description"] = form.get("description", "")
    elif action == "tag":
        params["Tags"] = [
            {"TagKey": form.get("tag_key", ""), "TagValue": form.get("tag_value", "")}
        ]
    elif action == "untag":
        params["TagKeys"] = [form.get("tag_key", "")]
    return params


def _integer(text: str) -> int | str:
    # A non-number goes to the operation's validation as it is, which answers AWS's error.
    return int(text) if text.strip().isdigit() else text


@console.post("/keys/<account>/<region>/<key_id>/<action>")
def key_action(account: str, region: str, key_id: str, action: str) -> BaseResponse | str:
    chosen = KEY_ACTIONS.get(action)
    if chosen is None:
        abort(404)
    scope = _scope_for(account, region)
    params = _key_params(action, key_id)
    if request.form.get("confirmed") != "yes":
        question = chosen.question.format(
            key=key_id,
            period=request.form.get("period", "365"),
            window=request.form.get("window", "30"),
            tag_key=request.form.get("tag_key", ""),
        )
        back = url_for("console.key_page", account=account, region=region, key_id=key_id)
        return _confirm(chosen.operation, question, request.path, back)
    _flash(perform(chosen.operation, params, scope))
    return redirect(url_for("console.key_page", account=account, region=region, key_id=key_id))


def _confirm(title: str, question: str, action_url: str, cancel_url: str | None = None) -> str:
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


def _flash(outcome: Outcome) -> None:
    flash(outcome.summary(), "ok" if outcome.ok else "error")


# --- requests --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestFilter:
    operation: str = ""
    key: str = ""
    principal: str = ""
    error: str = ""

    def matches(self, entry: FeedEntry) -> bool:
        if self.operation and self.operation.lower() not in entry.operation.lower():
            return False
        if self.key and self.key.lower() not in entry.key_arn.lower():
            return False
        if self.principal and self.principal.lower() not in entry.principal.lower():
            return False
        if self.error == "ok":
            return not entry.error_code
        if self.error == "any":
            return bool(entry.error_code)
        return not self.error or self.error.lower() in entry.error_code.lower()


def _request_filter() -> RequestFilter:
    args = request.args
    return RequestFilter(
        operation=args.get("operation", "").strip(),
        key=args.get("key", "").strip(),
        principal=args.get("principal", "").strip(),
        error=args.get("error", "").strip(),
    )


def _recent(wanted: RequestFilter) -> list[FeedEntry]:
    settings = services().settings
    entries = read_recent(state_directory(settings), settings.region, RECENT_LIMIT)
    return [entry for entry in entries if wanted.matches(entry)]


@console.get("/requests")
def requests_page() -> str:
    wanted = _request_filter()
    return render_template(
        "requests.html", scope=current_scope(), entries=_recent(wanted), wanted=wanted
    )


@console.get("/requests/feed.json")
def requests_feed() -> Response:
    """New entries for the live table: those at or after ``since`` (epoch seconds)."""
    try:
        since = float(request.args.get("since", "0"))
    except ValueError:
        since = 0.0
    entries = [entry for entry in _recent(_request_filter()) if entry.at >= since]
    rows = [
        {
            "at": entry.at,
            "time": _time_label(entry.at),
            "requestId": entry.request_id,
            "operation": entry.operation,
            "principal": entry.principal,
            "key": entry.key_arn,
            "result": entry.error_code or "OK",
            "refused": entry.refused,
            "url": url_for("console.request_page", request_id=entry.request_id),
        }
        for entry in entries[:200]
    ]
    return jsonify({"entries": rows})


@console.get("/requests/<request_id>")
def request_page(request_id: str) -> str:
    settings = services().settings
    for entry in read_recent(state_directory(settings), settings.region, 100_000):
        if entry.request_id == request_id:
            record = json.dumps(entry.event, indent=2, sort_keys=True)
            return render_template(
                "request.html", scope=current_scope(), entry=entry, record=record
            )
    abort(404)


def _time_label(at: float) -> str:
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
    return _time_label(float(value)) + " UTC"


# --- S3 -------------------------------------------------------------------------------------
def _s3() -> Any:
    return current_app.extensions.get("mock_kms.s3")


@console.get("/s3")
def s3_page() -> str:
    scope = current_scope()
    s3 = _s3()
    buckets = s3.store.list_buckets(scope.account_id) if s3 is not None else []
    return render_template("s3.html", scope=scope, s3_enabled=s3 is not None, buckets=buckets)


@console.get("/s3/<bucket>")
def bucket_page(bucket: str) -> str:
    scope = current_scope()
    s3 = _s3()
    if s3 is None:
        abort(404)
    from s3_service.errors import S3Error

    try:
        record = s3.store.get_bucket(bucket)
    except S3Error:
        abort(404)
    if record.account_id != scope.account_id:
        abort(404)
    objects = []
    for listed in s3.store.list_objects(bucket, b"", None, 1000):
        try:
            stored = s3.store.get_object(bucket, listed.key)
        except S3Error:
            continue  # deleted since it was listed
        protection = classify(stored.envelope, stored.attributes.metadata)
        objects.append((stored, protection))
    return render_template("bucket.html", scope=scope, bucket=record, objects=objects)


@console.get("/s3/<bucket>/object")
def object_page(bucket: str) -> str:
    scope = current_scope()
    s3 = _s3()
    if s3 is None:
        abort(404)
    from s3_service.errors import S3Error

    try:
        record = s3.store.get_bucket(bucket)
        stored = s3.store.get_object(bucket, request.args.get("key", ""))
    except S3Error:
        abort(404)
    if record.account_id != scope.account_id:
        abort(404)
    protection = classify(stored.envelope, stored.attributes.metadata)
    current_version = None
    if protection.kms is not None:
        key = find_key(services(), scope.account_id, scope.region, protection.kms.key_id)
        current_version = key.current_material_id if key is not None else None
    return render_template(
        "object.html",
        scope=scope,
        bucket=record,
        stored=stored,
        protection=protection,
        current_version=current_version,
    )


# --- developer endpoints: the clock and the reset --------------------------------------------
@console.post("/dev/<action>")
def dev_action(action: str) -> BaseResponse | str:
    svc = services()
    if not svc.settings.dev_endpoints or action not in ("advance-clock", "reset-clock", "reset"):
        abort(404)
    questions = {
        "advance-clock": f"Advance the service clock by {request.form.get('duration', '')}? "
        "Rotations and deletions that fall due happen now.",
        "reset-clock": "Set the service clock back to real time?",
        "reset": "Delete every key, alias and piece of key material, and reset the clock?",
    }
    if request.form.get("confirmed") != "yes":
        return _confirm("Developer action", questions[action], request.path)
    shared = _shared()
    if action == "advance-clock":
        try:
            seconds = parse_duration(request.form.get("duration", ""))
        except ValueError as exc:
            flash(str(exc), "error")
            return redirect(url_for("console.keys"))
        if not 0 < seconds <= 100 * 365 * 86400:
            flash("the clock moves forward only, by at most 100 years", "error")
            return redirect(url_for("console.keys"))
        move_clock(shared, shared.clock_offset() + seconds)
        time.sleep(shared.propagation_seconds)  # every worker sees the new time first
        sweep = sweep_due_lifecycle(svc)
        flash(f"Clock advanced: {sweep.rotated} key(s) rotated, {sweep.deleted} deleted.", "ok")
    elif action == "reset-clock":
        move_clock(shared, 0.0)
        time.sleep(shared.propagation_seconds)
        flash("Clock reset to real time.", "ok")
    else:
        deleted = wipe_state(svc, shared)
        time.sleep(shared.propagation_seconds)
        flash(f"State reset: {deleted} key(s) deleted.", "ok")
    return redirect(url_for("console.keys"))


@console.get("/<path:unknown>")
def unknown_page(unknown: str) -> BaseResponse:
    """Anything else under /console/: the console's own 404 page, with its headers."""
    return guard.refuse(404, "Not found", "There is nothing here.")


@console.errorhandler(404)
def _not_found(_: Exception) -> BaseResponse:
    return guard.refuse(404, "Not found", "There is nothing here.")
