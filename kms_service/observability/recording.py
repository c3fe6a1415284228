"""Recording one answered KMS request: its metrics and, when configured, its audit event.

The wire layer's ``dispatch`` calls the recorder found in ``app.extensions`` under
:data:`RECORD_EXTENSION` once per request, with what it already knows (operation, error code,
duration, caller, parameters, result), instead of generic Flask request hooks that would have
to look all of it up again through context-local proxies.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kms_service.access.request import Authorization
from kms_service.observability.audit import AuditLog, build_event
from kms_service.operations import KNOWN_UNIMPLEMENTED, OPERATIONS

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from kms_service.console.feed import RequestFeed
    from kms_service.observability.metrics import RequestMetrics

#: The ``app.extensions`` key of the :class:`RequestRecorder` that ``dispatch`` calls.
RECORD_EXTENSION = "mock_kms.record"


class RequestRecorder:
    """Counts and times every KMS request; writes its audit event when there is a log."""

    def __init__(
        self, metrics: RequestMetrics, audit: AuditLog | None, default_region: str
    ) -> None:
        self._observe = metrics.observe
        self._audit = audit
        self._default_region = default_region
        self._feed: RequestFeed | None = None

    def attach_feed(self, feed: RequestFeed) -> None:
        """Also hand every request to the web console's feed (kms_service.console.feed)."""
        self._feed = feed

    def __call__(
        self,
        req: Request,
        name: str | None,
        error_code: str | None,
        seconds: float,
        request_id: str,
        caller: Any,
        params: Mapping[str, Any] | None,
        result: Mapping[str, Any] | None,
        authorizations: Sequence[Authorization] = (),
    ) -> None:
        """Record one answered KMS request (``authorizations``: the access-control decisions
        taken for it, in order). ``name`` is None when ``X-Amz-Target`` did not
        name an operation; ``caller`` is None when the request failed before its caller was
        known; ``error_code`` is None for a success."""
        if name is None:
            name = (req.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        # A known name or ``Unknown``, so a client sending junk targets cannot grow the
        # metrics' label set.
        operation = name if name in OPERATIONS or name in KNOWN_UNIMPLEMENTED else "Unknown"
        self._observe(operation, error_code, seconds)
        feed = self._feed
        if feed is not None:
            feed.record(
                request_id, operation, caller, params, result, error_code, req.remote_addr,
                req.headers.get("User-Agent"),
            )  # fmt: skip
        audit = self._audit
        if audit is None:
            return
        audit.write(
            build_event(
                event_time=time.time(),
                request_id=request_id,
                operation=operation,
                scope=caller,
                params=params,
                result=result,
                error_code=error_code,
                source_ip=req.remote_addr,
                user_agent=req.headers.get("User-Agent"),
                default_region=self._default_region,
                authorizations=authorizations,
            )
        )
