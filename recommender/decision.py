"""The decision core: eligibility → scoring → arbitration for one moment. Pure and fast:
the raw Redis replies (read in one round trip) and the moment in, a choice out; no I/O.
``floorwalker bench decide`` measures it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recommender.arbitration import Arbitration, arbitrate
from recommender.catalog import Catalog
from recommender.crm import CrmModel
from recommender.eligibility import Moment, Settings, guest_candidates, member_candidates, store_candidates
from recommender.holdout import in_holdout
from recommender.profile import Raw, parse_contacts, parse_profile, parse_visit
from recommender.propensity import Propensity
from recommender.scoring import score


@dataclass
class Core:
    catalog: Catalog
    propensity: Propensity
    model: CrmModel
    settings: Settings
    vip_tiers: frozenset[str] = frozenset({"gold", "platinum"})

    def decide_member(
        self,
        member: str,
        profile_raw: Raw,
        visit_raw: Raw,
        contacts_raw: Sequence[tuple[bytes | str, float]],
        moment: Moment,
    ) -> Arbitration:
        profile = parse_profile(member, profile_raw)
        if profile is None or not profile.consent:
            return Arbitration(None)
        rfm = profile.rfm(self.model.rfm, moment.ts)
        stage = profile.lifecycle(moment.ts)
        candidates = member_candidates(self.catalog, profile, moment, self.settings, rfm, stage)
        if not candidates:
            return Arbitration(None)
        vip = profile.tier in self.vip_tiers
        scored = [(c, score(c, moment, self.propensity, vip, rfm, stage)) for c in candidates]
        visit = parse_visit(visit_raw)
        policy = self.catalog.policy
        holdout = in_holdout(member, policy.holdout_pct, policy.holdout_salt)
        return arbitrate(scored, visit, parse_contacts(contacts_raw), policy, moment.ts, holdout)

    def decide_guest(self, moment: Moment) -> Arbitration:
        """A non-member at a till (no visit state: the lane's dedupe keeps it to one)."""
        scored = [
            (c, score(c, moment, self.propensity))
            for c in guest_candidates(self.catalog, moment, self.settings)
        ]
        return arbitrate(scored, parse_visit({}), [], self.catalog.policy, moment.ts)

    def decide_store(self, moment: Moment) -> Arbitration:
        """Store-level (open a till): store cool-downs are claimed in Redis by the shell."""
        scored = [(c, score(c, moment, self.propensity)) for c in store_candidates(self.catalog, moment)]
        return arbitrate(scored, parse_visit({}), [], self.catalog.policy, moment.ts)
