"""Notifications through Apprise: e-mail, SMS gateways, chat, push, in one URL scheme.

A recipient is an Apprise URL (``mailto://...``, ``tgram://...``,
``slack://...``, ``json://...``; see https://github.com/caronc/apprise/wiki) or
the name of a recipient the tenant configured (a set of such URLs). Each URL
becomes one delivery in the outbox, retried on its own like a webhook.

During quiet hours, notifications below the window's ``min_severity`` are
held, not dropped: they go out when the window ends.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from typing import Final

import apprise
import msgspec

from m2mhub.actions.outbox import DeliveryWorker, Outcome
from m2mhub.actions.quiet_hours import QuietHours, parse_quiet_hours, severity_rank
from m2mhub.config import Settings
from m2mhub.core.errors import PayloadError
from m2mhub.core.timeutil import now_ms
from m2mhub.registry.naming import check_path_name
from m2mhub.store.base import Store
from m2mhub.store.models import Delivery

MAX_TITLE_CHARS: Final = 250
MAX_BODY_CHARS: Final = 32_768
MAX_RECIPIENTS: Final = 50

#: Apprise's message styles (colour, icon) for each severity.
NOTIFY_TYPES: Final = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "minor": apprise.NotifyType.WARNING,
    "major": apprise.NotifyType.FAILURE,
    "critical": apprise.NotifyType.FAILURE,
}


class Message(msgspec.Struct, frozen=True):
    """What a notification delivery carries (its outbox body)."""

    title: str
    body: str
    severity: str


def check_apprise_url(url: str, *, field: str = "recipients") -> str:
    """``url`` if Apprise can send to it, else :class:`PayloadError`."""
    if apprise.Apprise.instantiate(url) is None:
        raise PayloadError(
            f"{field}: {mask_url(url)!r} is not an Apprise URL it can use "
            "(see https://github.com/caronc/apprise/wiki)",
            field=field,
        )
    return url


@functools.lru_cache(maxsize=1024)
def mask_url(url: str) -> str:
    """The URL as Apprise shows it with passwords and tokens hidden."""
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        scheme = url.split("://", 1)[0]
        return f"{scheme}://****"
    return str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]


def is_url(recipient: str) -> bool:
    return "://" in recipient


class Notifier:
    """Queues notifications (with quiet hours) and sends them for the delivery worker."""

    kind: Final = "notify"

    def __init__(self, store: Store, settings: Settings, worker: DeliveryWorker) -> None:
        self.store = store
        self.settings = settings
        self.worker = worker
        worker.senders[self.kind] = self

    async def notify(
        self,
        *,
        tenant_id: int,
        source: str,
        recipients: Sequence[str],
        title: str,
        body: str,
        severity: str = "info",
        quiet_hours: QuietHours | None = None,
    ) -> list[str]:
        """Queue a notification to each recipient; returns the delivery ids (one per URL).

        ``recipients`` are Apprise URLs or names of the tenant's recipients.
        ``quiet_hours`` default to the tenant's. Raises :class:`PayloadError` for
        an unknown name, a URL Apprise cannot use, or an unknown severity.
        """
        severity_rank(severity)
        if not body.strip():
            raise PayloadError("body: a notification needs a body", field="body")
        if len(title) > MAX_TITLE_CHARS or len(body) > MAX_BODY_CHARS:
            raise PayloadError(
                f"title or body too long (at most {MAX_TITLE_CHARS} and {MAX_BODY_CHARS} "
                "characters)",
                field="body",
            )
        urls = await self.resolve(tenant_id, recipients)
        if quiet_hours is None:
            stored = await self.store.quiet_hours(tenant_id)
            quiet_hours = parse_quiet_hours(stored) if stored else None
        now = now_ms()
        held_until = quiet_hours.held_until(now, severity) if quiet_hours else None
        message = msgspec.json.encode(Message(title, body, severity)).decode()
        deliveries = [
            Delivery(
                id=f"nt_{secrets.token_hex(8)}",
                tenant_id=tenant_id,
                kind=self.kind,
                source=source,
                target=url,
                body=message,
                secret=None,
                headers={},
                status="held" if held_until else "pending",
                attempts=0,
                next_ms=held_until or now,
                created_ms=now,
                last_attempt_ms=None,
                finished_ms=None,
                last_error=None,
                last_code=None,
            )
            for url in urls
        ]
        await self.store.add_deliveries(deliveries)
        self.worker.wake()
        return [d.id for d in deliveries]

    async def resolve(self, tenant_id: int, recipients: Sequence[str]) -> list[str]:
        """The Apprise URLs of ``recipients`` (URLs and names), each once, in order."""
        if not recipients:
            raise PayloadError("recipients: name at least one", field="recipients")
        names = [r for r in recipients if not is_url(r)]
        known = await self.store.recipients(tenant_id, names) if names else {}
        urls: list[str] = []
        for recipient in recipients:
            if is_url(recipient):
                urls.append(check_apprise_url(recipient))
            elif recipient in known:
                urls += known[recipient].urls
            else:
                raise PayloadError(
                    f"recipients: no recipient named {recipient!r}; create it with "
                    f"PUT /api/v1/notifications/recipients/{recipient}",
                    field="recipients",
                )
        unique = list(dict.fromkeys(urls))
        if len(unique) > MAX_RECIPIENTS:
            raise PayloadError(f"recipients: more than {MAX_RECIPIENTS} URLs", field="recipients")
        return unique

    async def set_recipient(self, tenant_id: int, name: str, urls: Sequence[str]) -> None:
        """Create or replace the named recipient ``name`` (its Apprise URLs)."""
        check_path_name(name)
        if is_url(name):
            raise PayloadError("name: a recipient's name cannot contain '://'", field="name")
        if not urls or len(urls) > MAX_RECIPIENTS:
            raise PayloadError(f"urls: give 1 to {MAX_RECIPIENTS} Apprise URLs", field="urls")
        for url in urls:
            check_apprise_url(url, field="urls")
        await self.store.set_recipient(tenant_id, name, list(dict.fromkeys(urls)))

    # -- the sender, called by the delivery worker ------------------------------------

    async def send(self, delivery: Delivery) -> Outcome:
        """One attempt through Apprise (its blocking I/O runs in Apprise's threads)."""
        message = msgspec.json.decode(delivery.body, type=Message)
        service = apprise.Apprise()
        if not service.add(delivery.target):
            return Outcome(False, retry=False, error="not an Apprise URL it can use")
        result = await service.async_notify(
            body=message.body,
            title=message.title,
            notify_type=NOTIFY_TYPES.get(message.severity, apprise.NotifyType.INFO),
            timeout=self.settings.webhook_timeout_s,
        )
        if result:
            return Outcome(True)
        problems = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
        return Outcome(False, error="; ".join(problems) or f"Apprise: {result.status.name}")

    def display_target(self, delivery: Delivery) -> str:
        return mask_url(delivery.target)

    async def aclose(self) -> None:
        return None
