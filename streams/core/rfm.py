"""RFM scores 1-5 from configured cut points (recency in days, frequency, monetary), or
from the population's quintiles once learned (`rfm_population.py`, `settings.rfm.learn`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.rules import RfmSettings
from schemas.state import CustomerState
from streams.core.rfm_population import Measures, RfmPopulation


@dataclass(frozen=True, slots=True)
class Rfm:
    r: int
    f: int
    m: int

    @property
    def score(self) -> str:
        return f"{self.r}{self.f}{self.m}"

    def as_dict(self) -> dict[str, int | str]:
        return {"r": self.r, "f": self.f, "m": self.m, "score": self.score}


def _ascending_score(value: float, cuts: list[float]) -> int:
    """1 below the first cut point, up to 5 at or above the last."""
    return 1 + sum(1 for cut in cuts if value >= cut)


def measures(state: CustomerState) -> Measures:
    return state.orders_count, state.total_spent, state.last_order_at


def rfm_scores(
    state: CustomerState,
    now: datetime,
    settings: RfmSettings,
    population: RfmPopulation | None = None,
) -> Rfm:
    if (
        settings.learn
        and population is not None
        and population.customers >= settings.learn_min_customers
    ):
        if state.orders_count <= 0 or state.last_order_at is None:
            return Rfm(1, 1, 1)  # below every customer with an order
        return Rfm(*population.scores(measures(state)))
    if state.last_order_at is None:
        recency = 1
    else:
        days = (now - state.last_order_at).total_seconds() / 86400
        # Recent is good: 5 within the first cut point, 1 beyond the last.
        recency = 5 - sum(1 for cut in settings.recency_days if days > cut)
    return Rfm(
        r=recency,
        f=_ascending_score(state.orders_count, settings.frequency),
        m=_ascending_score(state.total_spent, settings.monetary),
    )
