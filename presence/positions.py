"""Where each simulated shopper is on the floor, over time: the simulators' movement truth."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PositionSample:
    """One shopper at one moment. ``shopper`` is the simulator's own id (never on the wire);
    ``member`` is the CRM member id of a member whose app advertises with consent, else None."""

    ts: float
    shopper: str
    member: str | None
    x: float
    y: float
    zone: str
