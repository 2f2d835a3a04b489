"""What the manager acts on: open prompts with their age and holder, and how fast prompts
are accepted. Pure: the dashboard's route reads Redis and passes the time in."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel

from handheld.prompts import HandheldPrompt


class OpenPromptView(BaseModel):
    """One open prompt as the manager sees it (the store's own screen: names are fine)."""

    prompt_id: str
    kind: str
    #: Who holds it now, and their display name.
    holder: str
    holder_name: str
    customer_name: str
    zone: str | None
    lane: str | None
    headline: str
    #: Seconds since the prompt was made.
    age_s: float
    #: Seconds since it reached its holder (None: not recorded).
    with_holder_s: float | None
    #: Accepted and not yet done; None: nobody has answered it (it can be reassigned).
    outcome: str | None


class AcceptTimes(BaseModel):
    """Time to accept (delivery to the holder's tap): how many, median and 90th percentile."""

    count: int
    p50_s: float | None
    p90_s: float | None


class ResponseTimes(BaseModel):
    overall: AcceptTimes
    by_associate: dict[str, AcceptTimes]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of sorted values; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def accept_times(values: Iterable[float]) -> AcceptTimes:
    ordered = sorted(values)
    return AcceptTimes(count=len(ordered), p50_s=percentile(ordered, 50), p90_s=percentile(ordered, 90))


def response_times(samples: Iterable[tuple[str, float]], associates: Iterable[str]) -> ResponseTimes:
    """Per associate (every one listed, in order) and overall, from (holder, seconds) samples."""
    per: dict[str, list[float]] = {a: [] for a in associates}
    every: list[float] = []
    for holder, seconds in samples:
        per.setdefault(holder, []).append(seconds)
        every.append(seconds)
    return ResponseTimes(
        overall=accept_times(every), by_associate={a: accept_times(v) for a, v in per.items()}
    )


def open_prompt_views(
    prompts: Iterable[HandheldPrompt],
    delivered: Mapping[str, float],
    names: Mapping[str, str],
    now: float,
) -> list[OpenPromptView]:
    """The dashboard's rows, oldest prompt first."""
    rows = [
        OpenPromptView(
            prompt_id=p.prompt_id,
            kind=p.kind.value,
            holder=p.associate,
            holder_name=names.get(p.associate, p.associate),
            customer_name=p.customer_name,
            zone=p.zone,
            lane=p.lane,
            headline=p.headline,
            age_s=max(0.0, now - p.ts),
            with_holder_s=max(0.0, now - delivered[p.prompt_id]) if p.prompt_id in delivered else None,
            outcome=p.outcome,
        )
        for p in prompts
    ]
    return sorted(rows, key=lambda r: -r.age_s)
