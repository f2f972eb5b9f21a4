"""How long to wait before the next connection attempt.

Exponential backoff with "equal jitter" (AWS Architecture Blog, "Exponential
Backoff And Jitter", 2015): a fleet that lost its broker at the same instant
does not come back at the same instant, and no device retries in a tight loop.
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, *, first_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before attempt ``attempt`` (0 for the first retry).

    The ceiling doubles from ``first_s`` up to ``max_s``; the delay is drawn
    between half the ceiling and the ceiling, so retries never come in a tight loop.
    """
    ceiling = min(max_s, first_s * 2.0 ** min(attempt, 32))
    return (rng or random).uniform(ceiling / 2, ceiling)
