"""The service-level figure a store manager reads: of the prompts the system decided to
serve, how many an available associate accepted within a minute, how many went to the
floor lead, how many found nobody (and why), how long accepting took, and whether any
prompt was lost between the decision and a handheld.

Pure: the prompts delivered to handheld topics, the answers the (simulated) associates
sent, the recommender's counters and who was available when, in; :class:`ServiceLevel`
out. Times are event times (the replay's clock), except a delivery's ``latency_s``: the
wall-clock seconds from the publish of the message that made the recommender decide to the
prompt's arrival on the handheld topic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: A prompt counts as served when accepted within this many seconds of the decision.
ACCEPT_WITHIN_S = 60.0
#: ... and as promptly shown when on an available associate's handheld within this.
DELIVER_WITHIN_S = 2.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """A prompt published on an associate's handheld topic (a re-route is another one)."""

    prompt_id: str
    associate: str
    #: When the recommender decided it (the prompt's ``ts``) and when this handheld got it.
    decided: float
    seen_at: float
    #: Wall seconds from the deciding message's publish to this arrival (None: unknown).
    latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer an associate sent (accepted, dismissed or done), at event time ``ts``."""

    prompt_id: str
    associate: str
    outcome: str
    ts: float


@dataclass(slots=True)
class ServiceLevel:
    #: Decided and not held out: delivered (``prompts``) plus unserved.
    servable: int = 0
    accepted_60s: int = 0
    escalated: int = 0
    unserved: int = 0
    unserved_by_reason: dict[str, int] = field(default_factory=dict)
    #: Unserved prompts the recommender counted without a reason (the goal: 0).
    unserved_without_reason: int = 0
    #: Decided and delivered, but never accepted (ignored, dismissed, expired).
    not_accepted: int = 0
    #: Decided but never seen on any handheld topic (the goal: 0).
    lost: int = 0
    #: First delivery on an available associate's handheld within DELIVER_WITHIN_S.
    delivered_2s: int = 0
    #: Deliveries whose latency was measured.
    delivery_measured: int = 0
    rerouted: int = 0
    #: Answers the recommender refused (not the holder, or a second closing answer).
    refused: int = 0
    accept_s: list[float] = field(default_factory=list)

    def share(self, n: int) -> float | None:
        return n / self.servable if self.servable else None

    @property
    def accept_p50_s(self) -> float | None:
        return quantile(self.accept_s, 0.5)

    @property
    def accept_p90_s(self) -> float | None:
        return quantile(self.accept_s, 0.9)

    def to_json(self) -> dict[str, Any]:
        """The figures, shares as fractions (0..1), without the raw accept times."""
        out = asdict(self)
        del out["accept_s"]
        for name in ("accepted_60s", "escalated", "unserved", "not_accepted", "lost", "delivered_2s"):
            out[f"{name}_share"] = self.share(getattr(self, name))
        out["accept_p50_s"] = self.accept_p50_s
        out["accept_p90_s"] = self.accept_p90_s
        return out


def quantile(xs: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile (as numpy's default), None without samples."""
    if not xs:
        return None
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def unserved_reasons(stats: Mapping[str, int]) -> dict[str, int]:
    """``unserved:{reason}`` counters (not the per-kind ``unserved:{reason}:{kind}`` ones)."""
    return {
        k.split(":")[1]: v for k, v in stats.items() if k.startswith("unserved:") and k.count(":") == 1 and v
    }


def measure(
    deliveries: Iterable[Delivery],
    replies: Iterable[Reply],
    stats: Mapping[str, int],
    available: Callable[[str, float], bool],
    *,
    accept_within_s: float = ACCEPT_WITHIN_S,
    deliver_within_s: float = DELIVER_WITHIN_S,
) -> ServiceLevel:
    """The service level of one run. ``stats``: the recommender's counters (``prompts``,
    ``unserved:{reason}``, ``routing:escalated``, ``outcome:no_associate``, ``rerouted``,
    ``feedback_refused:*``); ``available(associate, t)``: on the floor and not on a break."""
    by_prompt: dict[str, list[Delivery]] = {}
    for d in deliveries:
        by_prompt.setdefault(d.prompt_id, []).append(d)
    for ds in by_prompt.values():
        ds.sort(key=lambda d: d.seen_at)
    reasons = unserved_reasons(stats)
    out = ServiceLevel(
        escalated=stats.get("routing:escalated", 0),
        unserved=sum(reasons.values()),
        unserved_by_reason=dict(sorted(reasons.items())),
        rerouted=stats.get("rerouted", 0),
        refused=sum(v for k, v in stats.items() if k.startswith("feedback_refused:")),
    )
    out.unserved_without_reason = max(0, stats.get("outcome:no_associate", 0) - out.unserved)
    decided = stats.get("prompts", 0) - stats.get("republished", 0)
    out.servable = decided + out.unserved + out.unserved_without_reason
    out.lost = max(0, decided - len(by_prompt))

    first_accept: dict[str, Reply] = {}
    for r in sorted(replies, key=lambda r: r.ts):
        offered = by_prompt.get(r.prompt_id)
        if r.outcome != "accepted" or offered is None or r.prompt_id in first_accept:
            continue
        holder = [d for d in offered if d.seen_at <= r.ts]
        if holder and holder[-1].associate == r.associate:  # the recommender takes only the holder's
            first_accept[r.prompt_id] = r
    for pid, ds in by_prompt.items():
        first = ds[0]
        if first.latency_s is not None:
            out.delivery_measured += 1
            if first.latency_s <= deliver_within_s and available(first.associate, first.decided):
                out.delivered_2s += 1
        accepted = first_accept.get(pid)
        if accepted is None:
            out.not_accepted += 1
            continue
        waited = accepted.ts - first.decided
        out.accept_s.append(waited)
        if waited <= accept_within_s and available(accepted.associate, accepted.ts):
            out.accepted_60s += 1
    return out


def text(level: ServiceLevel) -> list[str]:
    """The figure as Markdown lines (a table and a sentence)."""

    def pct(n: int) -> str:
        s = level.share(n)
        return "n/a" if s is None else f"{100 * s:.1f}%"

    def sec(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f} s"

    reasons = ", ".join(f"{k} {v}" for k, v in level.unserved_by_reason.items()) or "none"
    return [
        "| measure | prompts | share of servable |",
        "|---|---|---|",
        f"| servable (decided, not held out) | {level.servable} | |",
        f"| accepted by an available associate within {ACCEPT_WITHIN_S:.0f} s | {level.accepted_60s} "
        f"| {pct(level.accepted_60s)} |",
        f"| escalated to the floor lead | {level.escalated} | {pct(level.escalated)} |",
        f"| unserved ({reasons}) | {level.unserved} | {pct(level.unserved)} |",
        f"| delivered, never accepted | {level.not_accepted} | {pct(level.not_accepted)} |",
        f"| lost between decision and handheld | {level.lost} | {pct(level.lost)} |",
        f"| on an available associate's handheld within {DELIVER_WITHIN_S:.0f} s | {level.delivered_2s} "
        f"| {pct(level.delivered_2s)} |",
        "",
        f"Time to accept: p50 {sec(level.accept_p50_s)}, p90 {sec(level.accept_p90_s)} "
        f"({len(level.accept_s)} accepted). Re-routed {level.rerouted}, answers refused {level.refused}, "
        f"unserved without a reason {level.unserved_without_reason}.",
    ]


def plot(level: ServiceLevel, path: Any) -> None:
    """Shares of servable prompts and the time-to-accept distribution, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
    parts = [
        (f"accepted ≤ {ACCEPT_WITHIN_S:.0f} s", level.accepted_60s),
        ("accepted later", len(level.accept_s) - level.accepted_60s),
        ("never accepted", level.not_accepted),
        *((f"unserved: {k}", v) for k, v in level.unserved_by_reason.items()),
        ("lost", level.lost),
    ]
    names = [p[0] for p in parts]
    ax1.barh(names, [100 * (level.share(n) or 0) for _, n in parts], color="#1f77b4")
    ax1.invert_yaxis()
    ax1.set_xlabel("% of servable prompts")
    ax1.set_title(f"Service level ({level.servable} servable, {level.escalated} escalated)")
    ax1.tick_params(labelsize=7)
    ax2.hist(level.accept_s, bins=30, color="#2ca02c")
    ax2.axvline(ACCEPT_WITHIN_S, color="#d62728", lw=1)
    ax2.set_xlabel("s from decision to accepted")
    ax2.set_title("Time to accept")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
