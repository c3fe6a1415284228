"""The Requests page, its live feed (polled by ``static/live.js``), one audit record."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import (
    Response,
    abort,
    jsonify,
    render_template,
    request,
    url_for,
)

from kms_service.console.actions import services
from kms_service.console.blueprint import (
    RECENT_LIMIT,
    console,
    current_scope,
    time_label,
)
from kms_service.console.feed import FeedEntry, read_recent
from kms_service.console.safety import state_directory


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
            "time": time_label(entry.at),
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
