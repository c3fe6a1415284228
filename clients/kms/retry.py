"""Which failures are retried, and how long to wait between attempts.

Retried: transport failures (no complete response), any 5xx, HTTP 429 and the throttling error
names AWS services use. Never retried: other 4xx, because the same request would fail the same
way. ``LimitExceededException`` is deliberately not treated as throttling (botocore's standard
mode does): in KMS it reports a quota such as aliases per key, which waiting does not lift.

Delays use exponential backoff with full jitter: attempt ``n`` (1-based, the attempt that just
failed) waits ``uniform(0, min(max_delay, base_delay * 2 ** (n - 1)))`` seconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from clients.kms.errors import KmsClientError, TransportError

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "BandwidthLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)


def is_retryable(error: BaseException) -> bool:
    """Whether a failed attempt may succeed if sent again unchanged."""
    if isinstance(error, TransportError):
        return True
    if isinstance(error, KmsClientError):
        return error.status >= 500 or error.status == 429 or error.code in THROTTLING_CODES
    return False


@dataclass
class RetryPolicy:
    """Bounded attempts with jittered exponential backoff.

    ``max_attempts`` counts the first attempt too (1 disables retries). ``random`` draws the
    jitter in ``[a, b]`` and ``sleep`` waits; tests replace them to observe the delays.
    """

    max_attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 20.0
    random: Callable[[float, float], float] = field(default=random.uniform, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """True if ``error`` from attempt number ``attempt`` (1-based) deserves another try."""
        return attempt < self.max_attempts and is_retryable(error)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), full jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return self.random(0.0, ceiling)
