"""The public names of m2mhub.actions, and the pure parts of delivery: backoff, Retry-After."""

from __future__ import annotations

import m2mhub.actions
from m2mhub.actions import backoff_ms, parse_retry_after


def test_public_names() -> None:
    # What rules and the API use; adding a name here is a decision, not an accident.
    assert set(m2mhub.actions.__all__) == {
        "SEVERITIES",
        "SIGNATURE_HEADER",
        "DeliveryWorker",
        "Notifier",
        "Outcome",
        "QuietHours",
        "WebhookService",
        "backoff_ms",
        "check_apprise_url",
        "mask_url",
        "parse_quiet_hours",
        "parse_retry_after",
        "sign",
        "verify_signature",
    }
    assert all(hasattr(m2mhub.actions, name) for name in m2mhub.actions.__all__)


def test_backoff_doubles_is_capped_and_jittered() -> None:
    low = [backoff_ms(n, base_s=1, max_s=10, rand=lambda: 0.0) for n in range(1, 7)]
    high = [backoff_ms(n, base_s=1, max_s=10, rand=lambda: 1.0) for n in range(1, 7)]
    assert high == [1000, 2000, 4000, 8000, 10_000, 10_000]
    assert low == [500, 1000, 2000, 4000, 5000, 5000]
    assert backoff_ms(10_000, base_s=1, max_s=10) <= 10_000


def test_retry_after() -> None:
    now = 1_795_478_400_000  # 2026-11-24T00:00:00Z
    assert parse_retry_after("120", now=now) == 120
    assert parse_retry_after("Tue, 24 Nov 2026 00:01:00 GMT", now=now) == 60
    assert parse_retry_after("Mon, 23 Nov 2026 00:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None
