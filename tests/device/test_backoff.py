"""Reconnection delays: growing, bounded, and spread out."""

from __future__ import annotations

import random

from m2mhub.device._backoff import backoff_delay


def test_delays_double_up_to_the_ceiling_with_jitter() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 30.0), (60, 30.0), (10**6, 30.0)]:
        delays = [backoff_delay(attempt, first_s=1.0, max_s=30.0, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays))
        assert len(set(delays)) > 150  # spread out, not one value for the whole fleet
