"""The Keys and One-key pages, creating a key, and the actions on one key: each behind a
confirmation page, each run through the KMS operations (:mod:`kms_service.console.actions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import (
    abort,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from kms_service.console.actions import perform, services
from kms_service.console.blueprint import (
    confirm_page,
    console,
    current_scope,
    flash_outcome,
    scope_for,
)
from kms_service.console.feed import read_recent
from kms_service.console.keys import (
    SORT_COLUMNS,
    KeyFilter,
    find_key,
    key_detail,
    key_rows,
    scopes,
)
from kms_service.console.safety import state_directory
from kms_service.domain.key_states import KeyState
from kms_service.wire.schemas import KEY_SPECS, KEY_USAGES, ORIGINS


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
    scope = scope_for(account, region)
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
    # SYMMETRIC_DEFAULT first: it is CreateKey's default and the only spec that needs no
    # KeyUsage, so the form's preselected choice always creates a key.
    ordered = sorted(KEY_SPECS, key=lambda spec: spec != "SYMMETRIC_DEFAULT")
    return [spec for spec in ordered if spec in supported]


def creatable_origins() -> list[str]:
    """``AWS_KMS``, and ``EXTERNAL`` (key material imported later) when the default backend
    declares it can unwrap imported material."""
    svc = services()
    capabilities = svc.backend(svc.default_backend).capabilities
    return [
        origin
        for origin in ORIGINS
        if origin == "AWS_KMS" or (origin == "EXTERNAL" and capabilities.wrapping_algorithms)
    ]


@console.get("/keys/new")
def new_key() -> str:
    return render_template(
        "new_key.html",
        scope=current_scope(),
        specs=creatable_specs(),
        usages=KEY_USAGES,
        origins=creatable_origins(),
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
    if form.get("origin") and form["origin"] != "AWS_KMS":
        params["Origin"] = form["origin"]
    if form.get("multi_region") == "yes":
        params["MultiRegion"] = True
    tag_key = form.get("tag_key", "").strip()
    if tag_key:
        params["Tags"] = [{"TagKey": tag_key, "TagValue": form.get("tag_value", "")}]
    if form.get("confirmed") != "yes":
        return confirm_page(
            "Create a key",
            f"Create a {params['KeySpec']} key in account {scope.account_id}, {scope.region}?",
            url_for("console.create_key"),
        )
    outcome = perform("CreateKey", params, scope)
    flash_outcome(outcome)
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
    scope = scope_for(account, region)
    params = _key_params(action, key_id)
    if request.form.get("confirmed") != "yes":
        question = chosen.question.format(
            key=key_id,
            period=request.form.get("period", "365"),
            window=request.form.get("window", "30"),
            tag_key=request.form.get("tag_key", ""),
        )
        back = url_for("console.key_page", account=account, region=region, key_id=key_id)
        return confirm_page(chosen.operation, question, request.path, back)
    flash_outcome(perform(chosen.operation, params, scope))
    return redirect(url_for("console.key_page", account=account, region=region, key_id=key_id))
