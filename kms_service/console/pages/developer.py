"""The developer actions (with ``--dev-endpoints``): move the clock, set it back, reset
all state, through the developer endpoints' own code (:mod:`kms_service.admin.lifecycle`)."""

from __future__ import annotations

import time

from flask import (
    abort,
    flash,
    redirect,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from kms_service.admin.durations import parse_duration
from kms_service.admin.lifecycle import move_clock, sweep_due_lifecycle, wipe_state
from kms_service.console.actions import services
from kms_service.console.blueprint import (
    confirm_page,
    console,
    shared_settings,
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
        return confirm_page("Developer action", questions[action], request.path)
    shared = shared_settings()
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
