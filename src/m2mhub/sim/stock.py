"""Stock sensors: a load cell under a bin, emptied by picking and filled by deliveries."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from m2mhub.core.values import Value
from m2mhub.sim.base import HOUR_MS, SimModel
from m2mhub.sim.keys import WEIGHT_KG

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class StockParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of :class:`StockBin` (see its docstring)."""

    capacity_kg: Positive = 250.0
    start_pct: Percent | None = None
    item_kg: Positive = 2.5
    picks_per_h: NonNegative = 1.5
    work_hours: tuple[float, float] = (8.0, 17.0)
    works_weekends: bool = False
    reorder_pct: Percent = 35.0
    lead_time_h: NonNegative = 24.0
    auto_refill: bool = True


class StockBin(SimModel[StockParams]):
    """A bin on a weighing platform (screws, bolts, cable) in a workshop or a store.

    During ``work_hours`` (weekdays unless ``works_weekends``) people take
    items at random, about ``picks_per_h`` picks an hour of one to three
    ``item_kg`` items. With ``auto_refill``, a replenishment order goes out
    when the weight falls below ``reorder_pct`` of ``capacity_kg`` and the
    delivery fills the bin ``lead_time_h`` later, at the first working hour
    after that; a long lead time lets the bin run empty (a stock-out).
    :meth:`refill` fills it at once, for an app that orders stock itself.
    """

    keys: ClassVar[tuple[str, ...]] = (WEIGHT_KG,)

    def _start(self, t_ms: int) -> None:
        p = self.params
        pct = p.start_pct if p.start_pct is not None else self.process.uniform(40, 100)
        self.weight_kg = p.capacity_kg * pct / 100
        self.delivery_at_ms: int | None = None
        self.refills = 0

    def refill(self) -> None:
        """A delivery fills the bin to capacity."""
        self.weight_kg = self.params.capacity_kg
        self.delivery_at_ms = None
        self.refills += 1

    def _is_work_time(self, t_ms: int) -> bool:
        p = self.params
        if self.local.is_weekend(t_ms) and not p.works_weekends:
            return False
        start, end = p.work_hours
        return start <= self.local.hour(t_ms) < end

    def _advance(self, t_ms: int, dt_s: float) -> None:
        p = self.params
        rng = self.process
        if not self._is_work_time(t_ms):
            return
        if self.delivery_at_ms is not None and t_ms >= self.delivery_at_ms:
            self.refill()
        # Picks arrive as a Poisson process; at most one per tick of a minute.
        if rng.random() < p.picks_per_h * dt_s / 3600:
            taken = p.item_kg * rng.randint(1, 3)
            self.weight_kg = max(0.0, self.weight_kg - taken)
        low = self.weight_kg < p.capacity_kg * p.reorder_pct / 100
        if p.auto_refill and low and self.delivery_at_ms is None:
            self.delivery_at_ms = t_ms + int(p.lead_time_h * HOUR_MS)

    def _read(self, ts_ms: int) -> dict[str, Value]:
        # A load cell: about 0.05 % of capacity of noise.
        noise = self.noise.gauss(0, 0.0005 * self.params.capacity_kg)
        return {WEIGHT_KG: round(max(0.0, self.weight_kg + noise), 2)}
