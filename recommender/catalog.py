"""The action catalog: a declarative YAML file of the actions the engine may prompt.

Each action names its ``kind`` (one of the contract's :class:`PromptKind` values: the kind
decides which facts the engine looks for — a due category, an open complaint, a queue),
its eligibility filters, the prompt text (``str.format`` templates over the facts of its
kind), a value estimate, caps, cool-downs and a priority class. A contact ``policy``
applies across all actions.

:func:`load_catalog` validates a file and names file, line and key on any problem;
:class:`CatalogWatcher` re-reads it when its mtime changes and keeps the previous catalog
when the new one is broken.
"""

from __future__ import annotations

import functools
import itertools
import logging
import string
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from broker_config.contract import Ident, PromptKind
from floorwalker.config import load_model, parse_model
from floorwalker.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data" / "catalog.yaml"


class Lifecycle(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    LAPSING = "lapsing"
    CHURN_RISK = "churn_risk"
    WON_BACK = "won_back"


#: Template variables every member prompt may use.
MEMBER_FACTS = frozenset({"tier", "points", "zone", "discount_pct", "segment", "lifecycle"})
#: Template variables per kind, on top of :data:`MEMBER_FACTS` (store-level kinds: alone).
KIND_FACTS: dict[PromptKind, frozenset[str]] = {
    PromptKind.GREET_VIP: MEMBER_FACTS,
    PromptKind.REPLENISHMENT_DUE: MEMBER_FACTS | {"category", "label", "interval_days", "since_days"},
    PromptKind.CROSS_SELL: MEMBER_FACTS | {"category", "because"},
    PromptKind.BIRTHDAY: MEMBER_FACTS | {"birthday_when", "days_to_birthday"},
    PromptKind.EXPIRING_POINTS: MEMBER_FACTS | {"expiring", "expires_in_days"},
    PromptKind.COMPLAINT_FOLLOW_UP: MEMBER_FACTS | {"complaint"},
    PromptKind.WIN_BACK: MEMBER_FACTS | {"since_last_days", "usual_gap_days"},
    PromptKind.LONG_DWELL_HELP: MEMBER_FACTS | {"dwell_min"},
    PromptKind.JOIN_INVITE: frozenset({"zone", "discount_pct", "basket_eur"}),
    PromptKind.OPEN_TILL: frozenset({"zone", "queue", "min_queue"}),
}
#: Kinds about the store, not a customer: no customer caps, routed to a manager.
STORE_KINDS = frozenset({PromptKind.OPEN_TILL})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Policy(_Strict):
    """The contact policy across all actions, and the outcome loop's settings."""

    max_prompts_per_visit: int = Field(default=2, ge=1, le=20)
    min_gap_s: float = Field(default=90.0, ge=0)
    holdout_pct: float = Field(default=10.0, ge=0, le=50)
    holdout_salt: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "fw-holdout-1"
    reroute_after_s: float = Field(default=45.0, ge=5)
    conversion_window_days: float = Field(default=7.0, gt=0, le=90)


class Eligibility(_Strict):
    """Who and when. Every given filter must hold; omitted ones do not filter."""

    #: ``false`` for non-member actions (join invite at a till).
    member: bool = True
    #: Consent purpose the member must have given.
    consent: Literal["recognition", "marketing"] = "recognition"
    tiers: list[Annotated[str, StringConstraints(min_length=1, max_length=20)]] | None = None
    segments: list[Ident] | None = None
    lifecycle: list[Lifecycle] | None = None
    zones: list[Ident] | None = None
    min_clv: float | None = Field(default=None, ge=0)
    category_due: bool = False
    open_complaint: bool = False
    birthday_within_days: int | None = Field(default=None, ge=0, le=31)
    points_expiring_within_days: int | None = Field(default=None, ge=0, le=365)
    min_dwell_s: float | None = Field(default=None, gt=0)
    min_queue: int | None = Field(default=None, ge=1)

    @functools.cached_property
    def filters_members(self) -> bool:
        """Whether any filter on the member is given (most actions have none): the core
        skips the checks of the others on every event."""
        return self.consent == "marketing" or any(
            f is not None for f in (self.tiers, self.segments, self.lifecycle, self.zones, self.min_clv)
        )


class Caps(_Strict):
    """How often: per customer per visit/day/week, per associate per hour (None: no cap)."""

    per_visit: int | None = Field(default=1, ge=1)
    per_day: int | None = Field(default=None, ge=1)
    per_week: int | None = Field(default=None, ge=1)
    per_associate_per_hour: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _possible(self) -> Caps:
        chain = [("per_visit", self.per_visit), ("per_day", self.per_day), ("per_week", self.per_week)]
        given = [(k, v) for k, v in chain if v is not None]
        for (ka, a), (kb, b) in itertools.pairwise(given):
            if a > b:
                raise ValueError(f"impossible caps: {ka}={a} is more than {kb}={b}")
        return self


class Text(_Strict):
    headline: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    suggestion: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    why: Annotated[str, StringConstraints(min_length=1, max_length=300)]


class Action(_Strict):
    id: Ident
    kind: PromptKind
    #: Priority class: a lower class always wins over a higher one; the score breaks ties.
    priority: int = Field(default=3, ge=1, le=9)
    eligible: Eligibility = Eligibility()
    #: Value of a conversion, in the store's currency units (the score multiplies it).
    value: float = Field(gt=0, le=100_000)
    caps: Caps = Caps()
    #: After a dismissal, this action stays silent for this customer for so long.
    cooldown_after_dismiss_s: float = Field(default=0.0, ge=0)
    #: Store-level actions: silent for so long after firing.
    cooldown_s: float = Field(default=0.0, ge=0)
    #: The prompt expires on the handheld after this long.
    expires_s: float = Field(default=300.0, ge=10, le=3600)
    text: Text

    @model_validator(mode="after")
    def _consistent(self) -> Action:
        allowed = KIND_FACTS[self.kind]
        for field in ("headline", "suggestion", "why"):
            try:
                names = template_fields(getattr(self.text, field))
            except ValueError as exc:
                raise ValueError(f"text.{field}: {exc}") from None
            for name in names:
                if name not in allowed:
                    raise ValueError(
                        f"text.{field}: unknown template variable {{{name}}} for kind {self.kind.value}"
                        f" (allowed: {', '.join(sorted(allowed))})"
                    )
        store_level = self.kind in STORE_KINDS
        if self.kind is PromptKind.JOIN_INVITE and self.eligible.member:
            raise ValueError("eligible.member must be false for join_invite (it is for non-members)")
        if self.kind is not PromptKind.JOIN_INVITE and not store_level and not self.eligible.member:
            raise ValueError(
                f"eligible.member: false only makes sense for join_invite, not {self.kind.value}"
            )
        if self.kind is PromptKind.OPEN_TILL and self.eligible.min_queue is None:
            raise ValueError("open_till needs eligible.min_queue")
        if self.kind is PromptKind.LONG_DWELL_HELP and self.eligible.min_dwell_s is None:
            raise ValueError("long_dwell_help needs eligible.min_dwell_s")
        return self


def template_fields(template: str) -> list[str]:
    """The variable names a ``str.format`` template uses; a malformed one raises ValueError."""
    names = []
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise ValueError(f"template variable {{{name}}} must be a plain name")
        names.append(name)
    return names


#: The trigger a member action waits for; every other member action fires on entering a zone.
MEMBER_TRIGGER: dict[PromptKind, Literal["enter", "dwell"]] = {PromptKind.LONG_DWELL_HELP: "dwell"}


class Catalog(_Strict):
    version: int = Field(default=1, ge=1, le=1)
    policy: Policy = Policy()
    actions: list[Action] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        ids = [a.id for a in self.actions]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate action id {dupes[0]!r}")
        return self

    # Looked up on every decision: grouped once per catalog (a reload is a new Catalog).
    @functools.cached_property
    def kinds(self) -> dict[PromptKind, tuple[Action, ...]]:
        return {k: tuple(a for a in self.actions if a.kind is k) for k in PromptKind}

    @functools.cached_property
    def member_triggers(self) -> dict[str, tuple[Action, ...]]:
        """The member actions by the trigger they wait for (``enter`` or ``dwell``), in order."""
        out: dict[str, tuple[Action, ...]] = {}
        for a in self.actions:
            if a.eligible.member and a.kind not in STORE_KINDS and a.kind is not PromptKind.JOIN_INVITE:
                trigger = MEMBER_TRIGGER.get(a.kind, "enter")
                out[trigger] = (*out.get(trigger, ()), a)
        return out

    def by_kind(self, kind: PromptKind) -> tuple[Action, ...]:
        return self.kinds[kind]


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    """Validate catalog YAML; a :class:`ConfigError` says ``source:line: key: problem``."""
    return parse_model(text, source, Catalog, "catalog", lines=True)


def load_catalog(path: Path) -> Catalog:
    return load_model(path, Catalog, "catalog", hint="check the store config's `catalog` key", lines=True)


@dataclass
class CatalogWatcher:
    """Hot reload: :meth:`poll` re-reads the file when its mtime changed.

    A broken new version is reported (one line) and the catalog in force stays.
    """

    path: Path
    current: Catalog
    mtime: float = 0.0
    last_error: str | None = None

    @classmethod
    def open(cls, path: Path) -> CatalogWatcher:
        catalog = load_catalog(path)
        return cls(path, catalog, _mtime(path))

    def poll(self) -> bool:
        """Reload if changed; True when a new catalog took effect."""
        mtime = _mtime(self.path)
        if mtime == self.mtime:
            return False
        self.mtime = mtime
        try:
            self.current = load_catalog(self.path)
        except ConfigError as exc:
            self.last_error = str(exc)
            log.error("catalog not reloaded, the previous one stays in force: %s", exc)
            return False
        self.last_error = None
        log.info("catalog reloaded from %s (%d actions)", self.path, len(self.current.actions))
        return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
