"""Compare what the system saw and did during a (replayed) trace with ground truth.

:func:`score` is pure: the trace's lines (what the devices reported), the truth file and the
system's outputs (prompts and dead letters, recorded or captured live) in, a
:class:`Report` out. :func:`write_report` renders it as Markdown with PNG plots (matplotlib,
Agg backend): footfall per zone per hour against truth, occupancy over time, zone
accuracy for members, the prompt timeline and latency distribution, prompts per associate
per hour, and, for a replay with simulated associates (``evaluate --staffed``), the service
level (:mod:`simulators.service_level`) and its plot.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker_config.contract import (
    CheckoutEvent,
    ContractError,
    FootfallEvent,
    PresenceEvent,
    Prompt,
    TopicKind,
    Topics,
    decode,
)
from simulators.service_level import ServiceLevel
from simulators.trace import TraceLine, Truth

#: How often a member's believed zone is compared with the true one, seconds.
ZONE_SAMPLE_S = 5.0
#: A prompt stamped within this of its arrival was decided on the wall clock.
WALL_CLOCK_SLACK_S = 5.0


@dataclass(frozen=True, slots=True)
class Output:
    """One message the system published: when it arrived (if captured live), topic, bytes."""

    received: float | None
    topic: str
    payload: bytes


@dataclass(slots=True)
class ZoneFootfall:
    zone: str
    reported: int
    true: int

    @property
    def error_pct(self) -> float | None:
        return 100.0 * (self.reported - self.true) / self.true if self.true else None


@dataclass(slots=True)
class Report:
    store: str
    start: float
    hours: list[str]
    #: Per zone: entries reported by the gateways and true entries, per hour and in total.
    footfall: list[ZoneFootfall]
    footfall_hourly: dict[str, list[tuple[int, int]]]
    #: Per zone: (window end offset s, reported occupancy, true occupancy).
    occupancy: dict[str, list[tuple[float, int, int]]]
    checkouts_reported: int
    checkouts_true: int
    #: Member -> (matching samples, samples) of the believed zone vs the true one.
    zone_accuracy: dict[str, tuple[int, int]]
    prompts: int = 0
    prompt_kinds: dict[str, int] = field(default_factory=dict)
    #: Deliveries of a prompt already counted (re-routed to another associate, same id).
    reroutes: int = 0
    #: (offset in the trace s, kind, associate) per prompt whose cause is in the trace.
    prompt_timeline: list[tuple[float, str, str]] = field(default_factory=list)
    #: Decision latency: prompt ts - cause ts (ms), and arrival latency when captured live.
    decision_ms: list[float] = field(default_factory=list)
    arrival_ms: list[float] = field(default_factory=list)
    per_associate_hour: dict[str, list[int]] = field(default_factory=dict)
    deadletters: int = 0
    bad_lines: int = 0
    #: Messages in the trace by kind (last topic level: footfall, presence, ble, checkout, ...).
    trace_kinds: dict[str, int] = field(default_factory=dict)
    #: How the outputs were obtained (e.g. "replayed at max speed"), said in the report.
    note: str = ""
    #: The simulated opening hours (``simulate --hours``), when the truth says; the trace
    #: runs on until the last shoppers have left, so ``hours`` may have one more.
    open_hours: float | None = None
    #: The service level of a replay with simulated associates (None: nobody staffed it).
    service: ServiceLevel | None = None

    @property
    def span_text(self) -> str:
        """How long the trace covers: "2 h" for ``--hours 2``, whatever the shoppers' tail."""
        if self.open_hours is None:
            return f"{len(self.hours)} h"
        extra = len(self.hours) - self.open_hours
        tail = f" (the last shoppers leave within {len(self.hours)} h)" if extra >= 1 else ""
        return f"{self.open_hours:g} h of arrivals{tail}"

    @property
    def member_zone_accuracy(self) -> float | None:
        hit = sum(h for h, _ in self.zone_accuracy.values())
        total = sum(n for _, n in self.zone_accuracy.values())
        return hit / total if total else None

    def footfall_total(self) -> tuple[int, int]:
        return sum(z.reported for z in self.footfall), sum(z.true for z in self.footfall)


def _believed_zones(
    events: Iterable[tuple[float, str, str, str]],
) -> dict[str, list[tuple[float, str | None]]]:
    """Per member, the zone the system believes they are in from ``t`` on (enter sets it; a
    leave clears it only if it is still the current zone)."""
    out: dict[str, list[tuple[float, str | None]]] = defaultdict(list)
    current: dict[str, str | None] = {}
    for ts, member, zone, action in sorted(events):
        if action == "enter":
            current[member] = zone
        elif current.get(member) == zone:
            current[member] = None
        out[member].append((ts, current.get(member)))
    return out


def _zone_at(timeline: list[tuple[float, str | None]], times: list[float], t: float) -> str | None:
    i = bisect.bisect_right(times, t) - 1
    return timeline[i][1] if i >= 0 else None


def score(
    lines: Iterable[TraceLine],
    truth: Truth,
    outputs: Sequence[Output],
    *,
    bad_lines: int = 0,
    to_trace_time: Callable[[float], float | None] | None = None,
) -> Report:
    topics = Topics()
    n_hours = max(1, int((truth.end - truth.start) // 3600) + (1 if (truth.end - truth.start) % 3600 else 0))
    hours = [
        dt.datetime.fromtimestamp(truth.start + 3600 * h, dt.UTC).strftime("%H:00") for h in range(n_hours)
    ]
    reported_hourly: dict[str, list[int]] = defaultdict(lambda: [0] * n_hours)
    occupancy_seen: dict[str, dict[int, int]] = defaultdict(dict)
    presence: list[tuple[float, str, str, str]] = []
    presence_ids: set[str] = set()
    cause_t: dict[str, float] = {}
    checkouts = 0
    kinds: Counter[str] = Counter()
    for line in lines:
        kinds[line.topic.rsplit("/", 1)[-1]] += 1
        try:
            msg = decode(topics, line.topic, line.payload)
        except ContractError:
            continue
        body, zone = msg.payload, msg.address.subject or ""
        cause_t[body.event_id] = line.t
        if isinstance(body, FootfallEvent):
            window_end = body.ts - truth.start
            h = min(n_hours - 1, max(0, int((window_end - 1e-6) // 3600)))
            reported_hourly[zone][h] += body.entered
            occupancy_seen[zone][round(window_end / truth.window_s)] = body.occupancy
        elif isinstance(body, PresenceEvent):
            presence.append((body.ts, body.member, zone, body.action))
            presence_ids.add(body.event_id)
        elif isinstance(body, CheckoutEvent):
            checkouts += 1

    true_hourly: dict[str, list[int]] = {}
    occupancy: dict[str, list[tuple[float, int, int]]] = {}
    for zone, rows in truth.counts.items():
        per_hour = [0] * n_hours
        series = []
        for i, row in enumerate(rows):
            end = (i + 1) * truth.window_s
            per_hour[min(n_hours - 1, int((end - 1e-6) // 3600))] += int(row[0] or 0)
            if i + 1 in occupancy_seen.get(zone, {}):
                series.append((end, occupancy_seen[zone][i + 1], int(row[2] or 0)))
        true_hourly[zone] = per_hour
        occupancy[zone] = series
    covered = [z for z in truth.counts if z in reported_hourly]
    footfall = [ZoneFootfall(z, sum(reported_hourly[z]), sum(true_hourly[z])) for z in covered]
    hourly = {z: list(zip(reported_hourly[z], true_hourly[z], strict=True)) for z in covered}

    # Presence the system itself published (a fuser turning BLE reports into zones) counts
    # too, put back on the trace's clock by ``to_trace_time`` (known for a paced replay);
    # what the trace already carried is not counted twice.
    if to_trace_time is not None:
        presence += _captured_presence(topics, outputs, presence_ids, to_trace_time)
    beliefs = _believed_zones(presence)
    accuracy: dict[str, tuple[int, int]] = {}
    for s in truth.shoppers:
        member = s.get("member")
        if not member or not s.get("recognizable"):
            continue
        visits = [(float(a), float(b), str(z)) for z, a, b in s["visits"] if str(z) in covered]
        timeline = beliefs.get(member, [])
        times = [t for t, _ in timeline]
        hit = n = 0
        for a, b, z in visits:
            t = a
            while t < b:
                n += 1
                hit += _zone_at(timeline, times, t) == z
                t += ZONE_SAMPLE_S
        if n:
            accuracy[member] = (hit, n)

    report = Report(
        store=truth.store, start=truth.start, hours=hours, footfall=footfall, footfall_hourly=hourly,
        occupancy=occupancy, checkouts_reported=checkouts,
        checkouts_true=sum(1 for s in truth.shoppers if s.get("paid") is not None),
        zone_accuracy=accuracy, bad_lines=bad_lines, trace_kinds=dict(kinds),
        open_hours=_open_hours(truth.meta),
    )  # fmt: skip
    per_associate: dict[str, list[int]] = defaultdict(lambda: [0] * n_hours)
    seen: set[str] = set()  # a re-routed prompt keeps its id: count the decision once
    for out in outputs:
        try:
            msg = decode(topics, topics.prefix + _strip_to_root(out.topic), out.payload)
        except ContractError:
            continue
        if msg.address.kind == TopicKind.DEADLETTER:
            report.deadletters += 1
            continue
        if not isinstance(msg.payload, Prompt):
            continue
        p = msg.payload
        if p.event_id in seen:
            report.reroutes += 1
            continue
        seen.add(p.event_id)
        associate = msg.address.subject or "?"
        report.prompts += 1
        report.prompt_kinds[p.kind.value] = report.prompt_kinds.get(p.kind.value, 0) + 1
        report.decision_ms.append(1000.0 * (p.ts - p.cause_ts))
        # Arrival latency only where the recommender stamped the prompt on the wall clock (a
        # live capture); a replay on the trace's clock dates events apart from when they arrive.
        if out.received is not None and abs(out.received - p.ts) < WALL_CLOCK_SLACK_S:
            report.arrival_ms.append(1000.0 * (out.received - p.cause_ts))
        sent_at = cause_t.get(p.cause_event_id)
        if sent_at is not None:
            offset = sent_at - truth.start
            report.prompt_timeline.append((offset, p.kind.value, associate))
            per_associate[associate][min(n_hours - 1, max(0, int(offset // 3600)))] += 1
    report.per_associate_hour = dict(per_associate)
    return report


def _captured_presence(
    topics: Topics, outputs: Sequence[Output], seen: set[str], to_trace_time: Callable[[float], float | None]
) -> list[tuple[float, str, str, str]]:
    out: list[tuple[float, str, str, str]] = []
    for o in outputs:
        if not o.topic.endswith("/presence"):
            continue
        try:
            msg = decode(topics, _strip_to_root(o.topic), o.payload)
        except ContractError:
            continue
        body = msg.payload
        at = to_trace_time(body.ts)
        if isinstance(body, PresenceEvent) and body.event_id not in seen and at is not None:
            out.append((at, body.member, msg.address.subject or "", body.action))
    return out


def _strip_to_root(topic: str) -> str:
    """The topic from ``fw/v1/`` on (outputs may have been captured under a prefix)."""
    i = topic.find("fw/v1/")
    return topic[i:] if i >= 0 else topic


# -- rendering ---------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


def _err(reported: int, true: int) -> float | None:
    return 100.0 * (reported - true) / true if true else None


def _quantile(xs: Sequence[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def write_report(report: Report, out_dir: Path, *, title: str = "Floorwalker evaluation") -> Path:
    """``out_dir/report.md`` plus its PNG plots; returns the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    zones = [z.zone for z in report.footfall]
    cols = min(4, max(1, len(zones)))
    rows = max(1, -(-len(zones) // cols))

    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharex=True)
    x = list(range(len(report.hours)))
    for ax, zone in zip(axes.flat, zones, strict=False):
        pairs = report.footfall_hourly[zone]
        ax.bar([i - 0.2 for i in x], [p[1] for p in pairs], width=0.4, label="truth", color="#999999")
        ax.bar([i + 0.2 for i in x], [p[0] for p in pairs], width=0.4, label="reported", color="#1f77b4")
        ax.set_title(zone, fontsize=9)
        ax.set_xticks(x, report.hours, rotation=90)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(zones) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Entries per zone per hour (UTC)")
    fig.tight_layout()
    fig.savefig(out_dir / "footfall_per_zone_hour.png", dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharex=True)
    for ax, zone in zip(axes.flat, zones, strict=False):
        series = report.occupancy.get(zone, [])
        ax.plot([s[0] / 3600 for s in series], [s[2] for s in series], color="#999999", label="truth")
        ax.plot(
            [s[0] / 3600 for s in series], [s[1] for s in series], color="#1f77b4", lw=0.8, label="reported"
        )
        ax.set_title(zone, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(zones) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Occupancy over time (hours from opening)")
    fig.tight_layout()
    fig.savefig(out_dir / "occupancy.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    acc = sorted(100.0 * h / n for h, n in report.zone_accuracy.values())
    ax.hist(acc, bins=20, range=(0, 100), color="#2ca02c")
    ax.set_xlabel("% of time in the right zone")
    ax.set_ylabel("members")
    ax.set_title("Zone accuracy for members")
    fig.tight_layout()
    fig.savefig(out_dir / "zone_accuracy.png", dpi=80)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
    kinds = sorted({k for _, k, _ in report.prompt_timeline})
    for i, kind in enumerate(kinds):
        ts = [t / 3600 for t, k, _ in report.prompt_timeline if k == kind]
        ax1.scatter(ts, [i] * len(ts), s=6, label=kind)
    ax1.set_yticks(range(len(kinds)), kinds, fontsize=7)
    ax1.set_xlabel("hours from opening")
    ax1.set_title("Prompt timeline")
    lat = report.arrival_ms or report.decision_ms
    ax2.hist(lat, bins=40, color="#d62728")
    ax2.set_xlabel("ms, " + ("event -> prompt at handheld" if report.arrival_ms else "event -> decision"))
    ax2.set_title("Prompt latency")
    fig.tight_layout()
    fig.savefig(out_dir / "prompts.png", dpi=80)
    plt.close(fig)

    associates = sorted(report.per_associate_hour)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(report.hours) + 2), max(2, 0.4 * len(associates) + 1)))
    grid = [report.per_associate_hour[a] for a in associates] or [[0] * len(report.hours)]
    im = ax.imshow(grid, aspect="auto", cmap="Blues")
    ax.set_yticks(range(len(associates)), associates, fontsize=7)
    ax.set_xticks(range(len(report.hours)), report.hours, fontsize=7, rotation=90)
    fig.colorbar(im, ax=ax)
    ax.set_title("Prompts per associate per hour")
    fig.tight_layout()
    fig.savefig(out_dir / "prompts_per_associate.png", dpi=80)
    plt.close(fig)

    rep, true = report.footfall_total()
    acc_all = report.member_zone_accuracy
    acc_text = "n/a" if acc_all is None else f"{100 * acc_all:.1f}%"
    paid, paid_true = report.checkouts_reported, report.checkouts_true
    lines = [
        f"# {title}",
        "",
        f"Store `{report.store}`, from {dt.datetime.fromtimestamp(report.start, dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{report.span_text}; trace: "
        + ", ".join(f"{n} {k}" for k, n in sorted(report.trace_kinds.items()))
        + ".",
        "",
        "| measure | system | truth | error |",
        "|---|---|---|---|",
        f"| entries (all covered zones) | {rep} | {true} | {_pct(_err(rep, true))} |",
        f"| checkouts | {paid} | {paid_true} | {_pct(_err(paid, paid_true))} |",
        f"| member zone accuracy | {acc_text} | 100% | |",
        "",
        "## Footfall per zone",
        "",
        "| zone | reported entries | true entries | error |",
        "|---|---|---|---|",
        *(f"| {z.zone} | {z.reported} | {z.true} | {_pct(z.error_pct)} |" for z in report.footfall),
        "",
        "![entries per zone per hour](footfall_per_zone_hour.png)",
        "",
        "![occupancy](occupancy.png)",
        "",
        "## Members' zones",
        "",
        f"{len(report.zone_accuracy)} recognizable members; the believed zone (from presence events) "
        f"matches the true zone {acc_text} of the time "
        f"(sampled every {ZONE_SAMPLE_S:.0f} s while they were in a covered zone).",
        "",
        "![zone accuracy](zone_accuracy.png)",
        "",
        "## Prompts",
        "",
        f"{report.prompts} prompts ({report.reroutes} re-routed to another associate), "
        f"{report.deadletters} dead letters, "
        f"{report.bad_lines} corrupt trace lines. {report.note}".rstrip(),
        "",
        "| kind | prompts |",
        "|---|---|",
        *(f"| {k} | {n} |" for k, n in sorted(report.prompt_kinds.items())),
        "",
    ]
    for name, xs in (
        ("event -> prompt at handheld", report.arrival_ms),
        ("event -> decision", report.decision_ms),
    ):
        if xs:
            lines.append(
                f"Latency {name}: p50 {_quantile(xs, 0.5):.1f} ms, p90 {_quantile(xs, 0.9):.1f} ms, "
                f"p99 {_quantile(xs, 0.99):.1f} ms, max {max(xs):.1f} ms ({len(xs)} prompts)."
            )
            lines.append("")
    lines += [
        "![prompt timeline and latency](prompts.png)",
        "",
        "| associate | " + " | ".join(report.hours) + " |",
        "|---|" + "---|" * len(report.hours),
        *(f"| {a} | " + " | ".join(str(n) for n in report.per_associate_hour[a]) + " |" for a in associates),
        "",
        "![prompts per associate per hour](prompts_per_associate.png)",
        "",
    ]
    if report.service is not None:
        from simulators import service_level

        service_level.plot(report.service, out_dir / "service_level.png")
        lines += [
            "## Service level",
            "",
            "Replayed with simulated associates signing in and out, taking a break and answering "
            "(or ignoring) the prompts on their handhelds; routing only to associates whose "
            "handheld is heard. Times are the events' clock, except delivery (wall clock).",
            "",
            *service_level.text(report.service),
            "",
            "![service level](service_level.png)",
            "",
        ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    (out_dir / "summary.json").write_text(json.dumps(summary(report), indent=2))
    return path


def _open_hours(meta: dict[str, Any]) -> float | None:
    hours = meta.get("hours")
    return float(hours) if isinstance(hours, int | float) and hours > 0 else None


def summary(report: Report) -> dict[str, object]:
    rep, true = report.footfall_total()
    return {
        "entries_reported": rep,
        "entries_true": true,
        "checkouts_reported": report.checkouts_reported,
        "checkouts_true": report.checkouts_true,
        "member_zone_accuracy": report.member_zone_accuracy,
        "prompts": report.prompts,
        "prompt_kinds": report.prompt_kinds,
        "reroutes": report.reroutes,
        "deadletters": report.deadletters,
        "bad_lines": report.bad_lines,
        "trace_kinds": report.trace_kinds,
        "decision_p50_ms": _quantile(report.decision_ms, 0.5),
        "arrival_p50_ms": _quantile(report.arrival_ms, 0.5),
        **({"service_level": report.service.to_json()} if report.service is not None else {}),
    }
