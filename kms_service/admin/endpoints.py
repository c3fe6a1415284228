"""The ``/_mock-kms/`` developer endpoints (registered only with ``MOCK_KMS_DEV_ENDPOINTS=1``).

=======================================  ====================================================
``GET  /_mock-kms/clock``                the clock: offset, now
``POST /_mock-kms/clock/advance``        ``{"duration": "400d"}`` or ``{"seconds": N}``; then
                                         applies every rotation and deletion that fell due
``POST /_mock-kms/clock/reset``          the run-time offset back to 0
``POST /_mock-kms/reset``                wipe keys, aliases, material, clock and faults; then
                                         re-apply the seed file, if the server has one
``GET|PUT|DELETE /_mock-kms/faults``     the fault-injection rules (:mod:`kms_service.admin.faults`)
=======================================  ====================================================

Every change is stored in the database and answered only once every worker sees it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, current_app, request

from kms_service.admin.durations import parse_duration
from kms_service.admin.faults import FaultConfigError, FaultInjector, parse_rules
from kms_service.admin.lifecycle import (
    clock_state,
    move_clock,
    sweep_due_lifecycle,
    wipe_state,
)
from kms_service.operations import Services
from kms_service.operations.shared_settings import SharedSettings

ADMIN_PREFIX = "/_mock-kms"
admin_blueprint = Blueprint("mock_kms_admin", __name__, url_prefix=ADMIN_PREFIX)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body, indent=2) + "\n", status=status, content_type="application/json"
    )


def _bad_request(message: str) -> Response:
    return _json({"error": message}, 400)


def _services() -> Services:
    services: Services = current_app.extensions["mock_kms.services"]
    return services


def _shared() -> SharedSettings:
    shared: SharedSettings = current_app.extensions["mock_kms.shared_settings"]
    return shared


def _faults() -> FaultInjector:
    injector: FaultInjector = current_app.extensions["mock_kms.faults"]
    return injector


def _body() -> dict[str, Any]:
    """The JSON object in the request (empty body: ``{}``). Raises ``ValueError``."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _wait_for_workers() -> None:
    # Every worker re-reads the shared settings within this time: after it, the change is
    # visible to whichever worker the caller's next request reaches.
    time.sleep(_shared().propagation_seconds)


@admin_blueprint.get("/clock")
def get_clock() -> Response:
    return _json(clock_state(_services(), _shared()))


@admin_blueprint.post("/clock/advance")
def advance_clock() -> Response:
    try:
        body = _body()
        if "seconds" in body:
            seconds = body["seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError("seconds must be a number")
            seconds = float(seconds)
        elif "duration" in body:
            seconds = parse_duration(str(body["duration"]))
        else:
            raise ValueError('give {"duration": "400d"} or {"seconds": N}')
    except ValueError as exc:
        return _bad_request(str(exc))
    if not 0 < seconds <= 100 * 365 * 86400:
        return _bad_request("the clock moves forward only, by at most 100 years")
    shared = _shared()
    move_clock(shared, shared.clock_offset() + seconds)
    _wait_for_workers()
    sweep = sweep_due_lifecycle(_services())
    state: dict[str, Any] = dict(clock_state(_services(), shared))
    state.update(rotated_keys=sweep.rotated, deleted_keys=sweep.deleted, expired_keys=sweep.expired)
    return _json(state)


@admin_blueprint.post("/clock/reset")
def reset_clock() -> Response:
    move_clock(_shared(), 0.0)
    _wait_for_workers()
    return _json(clock_state(_services(), _shared()))


@admin_blueprint.post("/reset")
def reset_state() -> Response:
    services = _services()
    deleted = wipe_state(services, _shared())
    body: dict[str, Any] = {"deleted_keys": deleted}
    seed = services.settings.seed
    if seed is not None:
        from kms_service.seeding import SeedError, load_seed_file
        from kms_service.seeding.apply import apply_seed

        try:
            body["seed"] = apply_seed(services, load_seed_file(seed)).as_json()
        except SeedError as exc:
            return _json({**body, "error": f"state wiped, but the seed failed: {exc}"}, 500)
    _wait_for_workers()
    return _json(body)


@admin_blueprint.get("/faults")
def get_faults() -> Response:
    rules = _faults().rules()
    return _json({name: rule.as_json() for name, rule in rules.items()})


@admin_blueprint.put("/faults")
def put_faults() -> Response:
    try:
        rules = parse_rules(_body())
    except (ValueError, FaultConfigError) as exc:
        return _bad_request(str(exc))
    _faults().set_rules(rules)
    _wait_for_workers()
    return _json({name: rule.as_json() for name, rule in rules.items()})


@admin_blueprint.delete("/faults")
def delete_faults() -> Response:
    _faults().set_rules({})
    _wait_for_workers()
    return _json({})
