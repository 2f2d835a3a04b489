"""The outcome report: acceptance, conversion and uplift against the holdout, per prompt
kind, with 95 % confidence intervals. Pure: the stats hash's counters in, rows out.

* acceptance = accepted / prompted (Wilson score interval);
* conversion = suggested category bought (same visit or within the window) / prompted,
  and the same for the holdout ("would have been prompted", never sent);
* uplift = conversion(prompted) - conversion(holdout), Newcombe's hybrid score interval
  (method 10) from the two Wilson intervals. Refused ("not enough data") unless both arms
  have at least ``min_sample`` members; the "all" row's uplift pools only kinds that each
  have a holdout of their own with enough data, never every kind against one kind's holdout
  (a kind with no holdout would be compared with another kind's customers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from broker_config.contract import PromptKind

Z95 = 1.959964

#: The fewest prompts, and the fewest holdout members, an uplift is given on (per arm).
MIN_SAMPLE = 30


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float, float] | None:
    """(rate, low, high), or None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def newcombe(s1: int, n1: int, s2: int, n2: int) -> tuple[float, float, float] | None:
    """Difference of two proportions p1 - p2 with Newcombe's hybrid score interval."""
    a, b = wilson(s1, n1), wilson(s2, n2)
    if a is None or b is None:
        return None
    (p1, l1, u1), (p2, l2, u2) = a, b
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    kind: str
    prompted: int
    accepted: int
    dismissed: int
    done: int
    converted: int
    holdout: int
    holdout_converted: int
    acceptance: tuple[float, float, float] | None
    conversion: tuple[float, float, float] | None
    holdout_conversion: tuple[float, float, float] | None
    uplift: tuple[float, float, float] | None
    #: Why the uplift is not given ("" when it is).
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _row(kind: str, n: Mapping[str, int], suffix: str, min_sample: int, pooled: str = "") -> OutcomeRow:
    """A kind's row (``suffix`` ``:{kind}``), or the total (``suffix`` ""); ``pooled`` is why
    the total's uplift may not pool the kinds ("" when it may)."""
    prompted = n.get(f"prompt:{kind}" if suffix else "prompts", 0)
    accepted = n.get(f"feedback:accepted{suffix}", 0)
    converted = n.get(f"converted{suffix}", 0)
    held = n.get(f"holdout{suffix}", 0)
    held_conv = n.get(f"holdout_converted{suffix}", 0)
    note = pooled
    if not note and min(prompted, held) < min_sample:
        note = f"not enough data ({prompted} prompted, {held} in the holdout; {min_sample} each needed)"
    return OutcomeRow(
        kind=kind,
        prompted=prompted,
        accepted=accepted,
        dismissed=n.get(f"feedback:dismissed{suffix}", 0),
        done=n.get(f"feedback:done{suffix}", 0),
        converted=converted,
        holdout=held,
        holdout_converted=held_conv,
        acceptance=wilson(accepted, prompted),
        conversion=wilson(converted, prompted),
        holdout_conversion=wilson(held_conv, held),
        uplift=None if note else newcombe(converted, prompted, held_conv, held),
        note=note,
    )


def outcome_rows(stats: Mapping[str, int], min_sample: int = MIN_SAMPLE) -> list[OutcomeRow]:
    """One row per prompt kind that happened, then the total. An uplift needs ``min_sample``
    on both arms; the total's, every kind's own uplift to be given (so every kind pooled is
    compared with its own holdout)."""
    rows = []
    for kind in PromptKind:
        k = kind.value
        if stats.get(f"prompt:{k}", 0) or stats.get(f"holdout:{k}", 0):
            rows.append(_row(k, stats, f":{k}", min_sample))
    orphans = [r.kind for r in rows if r.prompted and not r.holdout]
    if orphans:
        verb = "has" if len(orphans) == 1 else "have"
        pooled = f"not pooled: {', '.join(orphans)} {verb} no holdout of its own"
    elif any(r.note for r in rows):
        pooled = "not enough data in " + ", ".join(r.kind for r in rows if r.note) + " to pool the kinds"
    else:
        pooled = ""
    rows.append(_row("all", stats, "", min_sample, pooled))
    return rows


def decode_stats(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    out = {}
    for k, v in raw.items():
        try:
            out[k.decode()] = int(v)
        except ValueError:
            continue
    return out


#: What happened to late events (presence older than the member's latest), as the presence
#: script names it: ``late:<name>`` in the stats hash. The words the report uses.
LATE = {
    "applied_to_visit": "applied to the visit",
    "discarded_superseded": "superseded",
    "discarded_previous_visit": "previous visit",
}


def late_summary(stats: Mapping[str, int]) -> str | None:
    """One line on late events: how many, how many applied, and the discards by reason
    (``None`` when there were none). Late events counted before the breakdown existed
    (only ``outcome:out_of_order``) are said as not broken down, never as delivered."""
    total = stats.get("outcome:out_of_order", 0)
    if not total:
        return None
    applied = stats.get("late:applied_to_visit", 0)
    discarded = {n: stats.get(f"late:{n}", 0) for n in LATE if n.startswith("discarded_")}
    discards = [f"{count} {LATE[n]}" for n, count in discarded.items() if count]
    unknown = total - applied - sum(discarded.values())
    parts = [f"{applied} {LATE['applied_to_visit']}"]
    if discards:
        parts.append("discarded: " + ", ".join(discards))
    if unknown > 0:
        parts.append(f"{unknown} not broken down (counted before the breakdown)")
    return f"late events: {total} ({'; '.join(parts)})"
