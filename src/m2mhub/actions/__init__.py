"""What rules and people make m2mhub do outside itself: webhooks and notifications.

Both go through one durable outbox (:mod:`m2mhub.actions.outbox`): asking for
one stores it and returns at once; a worker sends it, retries with backoff and
keeps what never got through as a dead letter.
"""

from __future__ import annotations

from m2mhub.actions.notify import Notifier, check_apprise_url, mask_url
from m2mhub.actions.outbox import DeliveryWorker, Outcome, backoff_ms, parse_retry_after
from m2mhub.actions.quiet_hours import SEVERITIES, QuietHours, parse_quiet_hours
from m2mhub.actions.webhook import SIGNATURE_HEADER, WebhookService, sign, verify_signature

__all__ = [
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
]
