"""Manual corrections laid over derived or estimated intervals.

Reads are never changed: a person's correction is an
:class:`~m2mhub.apps.metering.consumption.Edit` kept by the service, and
:func:`apply_edits` lays the edits over freshly derived intervals each time. An
edited interval carries the interval it replaced (``original``) and the edit
itself, so every billed quantity can be traced back to a read or a person.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from m2mhub.apps.metering.values import Edit, Interval, MeterDataError, Method, Quality
from m2mhub.core.timeutil import format_ms

__all__ = ["apply_edits"]


def apply_edits(intervals: Iterable[Interval], edits: Iterable[Edit]) -> tuple[Interval, ...]:
    """``intervals`` with each edit applied to the interval starting at its ``start``.

    Of several edits to one interval the latest (by ``at``) wins; the others belong
    to the audit trail the service keeps. The result does not depend on the order of
    ``edits``. An edit that matches no interval is refused with a
    :class:`~m2mhub.apps.metering.consumption.MeterDataError`.
    """
    originals = tuple(intervals)
    starts = {interval.start for interval in originals}
    latest: dict[int, Edit] = {}
    # Sorting on every field makes the winner of a tie on ``at`` independent of order.
    for edit in sorted(edits, key=lambda e: (e.at, e.author, e.reason, e.quantity, e.start)):
        if edit.start not in starts:
            raise MeterDataError(
                f"start: {format_ms(edit.start)} is not the start of an interval of this "
                "series; edit one of its intervals by its start time",
                field="start",
            )
        latest[edit.start] = edit
    result: list[Interval] = []
    for interval in originals:
        chosen = latest.get(interval.start)
        if chosen is None:
            result.append(interval)
            continue
        result.append(
            msgspec.structs.replace(
                interval,
                quantity=chosen.quantity,
                quality=Quality.EDITED,
                method=Method.MANUAL,
                original=interval,
                edit=chosen,
            )
        )
    return tuple(result)
