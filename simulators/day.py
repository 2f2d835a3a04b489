"""A simulated store day: arrivals -> shoppers' walks, baskets and tills -> sensor messages
and ground truth. Deterministic for a seed; pure apart from reading the footfall curve.

``floorwalker simulate --out DIR`` writes :func:`simulate_day`'s result as
``DIR/trace.jsonl`` and ``DIR/truth.json``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from broker_config.contract import Topics
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from recommender.crm import CrmFixture
from simulators import sensors
from simulators.arrivals import HourlyCurve, arrival_times, curve_for, hourly_expectation
from simulators.checkout import Tills
from simulators.floorplan import build_floorplan
from simulators.shoppers import Shopper, Walker
from simulators.trace import Header, TraceLine, Truth, write_trace

#: The simulated day (a Monday) unless another is given; fixed so a seed gives one trace.
DEFAULT_DATE = dt.date(2026, 3, 2)

#: Told how far a day's simulation has come: the stage ("shoppers", "sensors") and the
#: share of it done, 0 to 1 (for a progress bar; called often, so keep it cheap).
OnProgress = Callable[[str, float], None]


def _no_progress(_stage: str, _done: float) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Day:
    header: Header
    lines: list[TraceLine]
    truth: Truth
    shoppers: list[Shopper]

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        trace, truth = out_dir / "trace.jsonl", out_dir / "truth.json"
        write_trace(trace, self.header, self.lines)
        self.truth.dump(truth)
        return trace, truth


def day_start(config: StoreConfig, date: dt.date = DEFAULT_DATE) -> float:
    opening = dt.datetime.combine(date, dt.time(config.simulation.open_hour), tzinfo=dt.UTC)
    return opening.timestamp()


def simulate_day(
    config: StoreConfig,
    crm: CrmFixture | None,
    *,
    hours: float,
    visitors: int,
    seed: int,
    date: dt.date = DEFAULT_DATE,
    curve: HourlyCurve | None = None,
    source: str = "store config",
    start: float | None = None,
    presence: Literal["model", "ble"] = "model",
    on_progress: OnProgress = _no_progress,
) -> Day:
    """Simulate ``visitors`` (expected) arriving over ``hours`` from opening time on ``date``
    (or from ``start``, Unix seconds, e.g. now for a trace to replay live with its own times;
    the footfall curve is still read from the opening hour). ``on_progress`` follows the
    walks, then the sensors."""
    if hours <= 0 or hours > 24:
        raise ConfigError(f"--hours {hours}: expected more than 0 and at most 24")
    if visitors < 0:
        raise ConfigError(f"--visitors {visitors}: expected 0 or more")
    if not config.lanes:
        raise ConfigError(f"{source}: lanes: the simulators need at least one checkout lane")
    plan = build_floorplan(config, source)
    curve = curve or curve_for(config.simulation.curve)
    rng = random.Random(seed)
    t0 = day_start(config, date) if start is None else start

    whole = math.ceil(hours)
    fraction = hours - (whole - 1)  # a part hour at the end gets its share of that hour
    expected = hourly_expectation(curve, config.simulation.open_hour, whole, 1.0)
    expected[-1] *= fraction
    expected = [visitors * e / sum(expected) for e in expected]
    times = arrival_times(expected, rng, last_hour_fraction=fraction)

    walker = Walker(plan, crm)
    people = walker.draw_people(len(times), rng)
    shoppers: list[Shopper] = []
    for i, (t, (member, recognizable, card)) in enumerate(zip(times, people, strict=True)):
        s = Shopper(f"s{i:05d}", member, recognizable, card, t0 + t)
        walker.shop(s, rng)
        shoppers.append(s)
        on_progress("shoppers", (i + 1) / len(times))

    # The tills serve in order of arrival there, so finish the walks in that order.
    tills = Tills([lane.id for lane in config.lanes])
    buyers: list[Shopper] = []
    browsers: list[Shopper] = []
    for s in shoppers:
        (browsers if rng.random() < config.simulation.no_purchase_share else buyers).append(s)
    checkout_zone = plan.checkout_zone or plan.entrance_zones[0]
    for s in buyers:
        walker.go_to(s, checkout_zone, rng)
    for s in sorted(buyers, key=lambda s: (s.frames[-1].t, s.id)):
        walker.pay(s, tills, rng)
    for s in browsers:
        s.basket.clear()
        walker.leave(s, rng)

    window = config.simulation.camera.window_s
    end = max((s.left for s in shoppers), default=t0 + hours * 3600)
    windows = sensors.Windows(t0, window, max(1, math.ceil((end - t0) / window)))
    counts = sensors.true_counts(shoppers, windows, [z.id for z in config.zones], plan.checkout_zone)

    devices = sensors.Devices(config, rng, Topics())
    emissions = devices.status(t0 - 1.0)
    emissions += sensors.camera(devices, counts, windows, np.random.default_rng(seed))
    if presence == "ble":
        from simulators.ble_sensor import ble

        emissions += ble(devices, shoppers, seed, on_progress=lambda done: on_progress("sensors", done))
    else:
        emissions += sensors.presence(devices, shoppers, rng)
    on_progress("sensors", 1.0)
    emissions += sensors.pos(devices, shoppers)
    lines = devices.stamp(emissions)

    meta = {"seed": seed, "hours": hours, "visitors": visitors, "layout": source, "curve": curve.source,
            "presence": presence,
            "shoppers": len(shoppers), "end": windows.start + windows.count * window}  # fmt: skip
    header = Header(config.store, "simulate", t0 - 1.0, meta)
    truth = Truth(config.store, t0, windows.start + windows.count * window, window,
                  [_shopper_truth(s) for s in shoppers], counts, meta)  # fmt: skip
    return Day(header, lines, truth, shoppers)


def _shopper_truth(s: Shopper) -> dict[str, object]:
    return {
        "id": s.id,
        "member": s.member,
        "recognizable": s.recognizable,
        "arrival": round(s.arrival, 3),
        "left": round(s.left, 3),
        "visits": [[v.zone, round(v.enter, 3), round(v.leave, 3)] for v in s.visits()],
        "lane": s.lane.lane if s.lane else None,
        "queued": round(s.lane.queued, 3) if s.lane else None,
        "paid": round(s.lane.paid, 3) if s.lane else None,
        "basket": [[i.sku, i.category, i.qty, i.amount_cents] for i in s.basket],
    }
