"""Every Redis key the recommender and the handheld API use, defined once.

Keys that belong to one customer share a hash tag (``{m_...}``) so that on Redis Cluster
they live on one slot and one Lua script may touch them together. Keys that belong to a
checkout lane are tagged by the lane for the same reason.

=====================================  =======  ================  ==============================
pattern                                type     TTL               written by
=====================================  =======  ================  ==============================
{p}fw:{store}:cust:{m}:profile         hash     none (CRM data)   CRM loader; checkout script
{p}fw:{store}:cust:{m}:visit           hash     visit_ttl_s       presence/checkout scripts
{p}fw:{store}:cust:{m}:seen            zset     dedupe_ttl_s      presence/checkout scripts
{p}fw:{store}:lane:{lane}:seen         zset     dedupe_ttl_s      checkout script (non-members)
{p}fw:{store}:cust:{m}:contacts        zset     history (8 d)     presence script; feedback
{p}fw:{store}:cust:{m}:suggested       hash     conversion win.   presence script; checkout script
{p}fw:{store}:cust:{m}:erased          string   none (tombstone)  ``floorwalker member erase``
{p}fw:{store}:cust:{m}:unsent          hash     UNSENT_TTL_S      presence script (claimed prompt,
                                                                  until its PUBACK); recommender
{p}fw:{store}:zone:{zone}:unsent       hash     UNSENT_TTL_S      footfall script (open a till)
{p}fw:{store}:lane:{lane}:unsent       hash     UNSENT_TTL_S      checkout script (non-member prompt)
{p}fw:{store}:zone:{zone}:seen         zset     dedupe_ttl_s      footfall script
{p}fw:{store}:zone:{zone}:cooldown:{a} string   action cool-down  footfall script (store actions)
{p}fw:{store}:prompt:{id}              hash     history (8 d)     recommender; feedback script
{p}fw:{store}:assoc:{a}:hold           string   HOLD_S (2 s)      recommender replicas (who just
                                                                  gave associate a a prompt)
{p}fw:{store}:crm:model                string   none              CRM import (CLV, RFM, cross-sell)
{p}fw:{store}:deadletter               stream   capped (MAXLEN)   recommender
{p}fw:{store}:stats                    hash     none (counters)   recommender
{p}fw:{store}:hh:{a}:prompts           stream   capped (MAXLEN)   handheld API (prompts per associate)
{p}fw:{store}:hh:prompt:{id}           hash     PROMPT_TTL_S      handheld API (owner, outcome)
{p}fw:{store}:cust:{m}:hh              set      PROMPT_TTL_S      handheld API (its prompts about m,
                                                                  for an erasure)
{p}fw:{store}:token:{sha256}           hash     expiry + grace    ``floorwalker token issue``
{p}fw:{store}:session:{sha256}         hash     expiry + grace    handheld API (``/signin``)
{p}fw:{store}:floor                    hash     none (latest)     handheld API (zone occupancy)
{p}fw:{store}:footfall:{yyyy-mm-dd}    hash     FOOTFALL_TTL_S    handheld API (entries by hour)
=====================================  =======  ================  ==============================
"""

from __future__ import annotations

from dataclasses import dataclass

#: How long contact history and prompt records are kept (the weekly caps need 7 days).
HISTORY_TTL_S = 8 * 86_400
#: A claimed prompt not yet confirmed by the broker is kept this long for a restart to
#: publish again (longer than any prompt's validity).
UNSENT_TTL_S = 3600
#: Dead-letter stream cap (approximate, ``XADD MAXLEN ~``).
DEADLETTER_MAXLEN = 10_000
#: Prompts kept per associate for pages that reconnect (approximate, ``XADD MAXLEN ~``).
PROMPT_STREAM_MAXLEN = 200
#: How long a prompt's owner and outcome are kept (feedback after that is a 404).
PROMPT_TTL_S = 24 * 3600
#: Hourly footfall is kept this long: a "typical day" is the mean of the last week.
FOOTFALL_TTL_S = 15 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Keys:
    store: str
    prefix: str = ""

    @property
    def _base(self) -> str:
        return f"{self.prefix}fw:{self.store}"

    def profile(self, member: str) -> str:
        return f"{self._base}:cust:{{{member}}}:profile"

    def visit(self, member: str) -> str:
        return f"{self._base}:cust:{{{member}}}:visit"

    def member_seen(self, member: str) -> str:
        return f"{self._base}:cust:{{{member}}}:seen"

    def lane_seen(self, lane: str) -> str:
        return f"{self._base}:lane:{{{lane}}}:seen"

    def contacts(self, member: str) -> str:
        return f"{self._base}:cust:{{{member}}}:contacts"

    def suggested(self, member: str) -> str:
        return f"{self._base}:cust:{{{member}}}:suggested"

    def erased(self, member: str) -> str:
        """Tombstone of an erased member: the scripts refuse their events."""
        return f"{self._base}:cust:{{{member}}}:erased"

    def unsent(self, member: str) -> str:
        """Prompts the presence script claimed for this member, until the broker has them."""
        return f"{self._base}:cust:{{{member}}}:unsent"

    def zone_unsent(self, zone: str) -> str:
        """A store-level prompt (open a till) claimed for this zone, until the broker has it."""
        return f"{self._base}:zone:{{{zone}}}:unsent"

    def lane_unsent(self, lane: str) -> str:
        """A till prompt for a non-member at this lane, until the broker has it."""
        return f"{self._base}:lane:{{{lane}}}:unsent"

    def unsent_pattern(self) -> str:
        return f"{self._base}:*:unsent"

    def zone_seen(self, zone: str) -> str:
        return f"{self._base}:zone:{{{zone}}}:seen"

    def store_cooldown(self, zone: str, action: str) -> str:
        """Tagged by the zone, like the zone's dedupe set: one script touches both."""
        return f"{self._base}:zone:{{{zone}}}:cooldown:{action}"

    def prompt(self, prompt_id: str) -> str:
        return f"{self._base}:prompt:{prompt_id}"

    def associate_hold(self, associate: str) -> str:
        return f"{self._base}:assoc:{associate}:hold"

    @property
    def crm_model(self) -> str:
        return f"{self._base}:crm:model"

    @property
    def deadletter(self) -> str:
        return f"{self._base}:deadletter"

    @property
    def stats(self) -> str:
        return f"{self._base}:stats"

    def handheld_prompts(self, associate: str) -> str:
        return f"{self._base}:hh:{{{associate}}}:prompts"

    def handheld_prompt(self, prompt_id: str) -> str:
        """The handheld API's own record of a prompt it showed (owner, outcome): not the
        recommender's :meth:`prompt` record, which the feedback script keeps."""
        return f"{self._base}:hh:prompt:{prompt_id}"

    def member_handheld_prompts(self, member: str) -> str:
        """The ids of the handheld API's prompt records about a member (erasure finds them here)."""
        return f"{self._base}:cust:{{{member}}}:hh"

    def token(self, digest: str) -> str:
        return f"{self._base}:token:{digest}"

    def session(self, digest: str) -> str:
        """A signed-in browser's or script's session, by the SHA-256 of its id."""
        return f"{self._base}:session:{digest}"

    @property
    def floor(self) -> str:
        return f"{self._base}:floor"

    def footfall(self, day: str) -> str:
        """Entries by hour (fields ``0`` .. ``23``) on ``day`` (``YYYY-MM-DD``, store local time)."""
        return f"{self._base}:footfall:{day}"

    def pattern(self) -> str:
        """Glob matching every key of this store and prefix (tests clean up with it)."""
        return f"{self._base}:*"


@dataclass(frozen=True, slots=True)
class ReplicaKeys:
    """Keys of a group of recommender replicas sharing one MQTT shared subscription
    (chain-wide, not per store; tagged by the group so one script may touch them)."""

    group: str
    prefix: str = ""

    @property
    def _base(self) -> str:
        return f"{self.prefix}fw:replicas:{{{self.group}}}"

    @property
    def members(self) -> str:
        """Set of replica ids that own an MQTT session (added at start, removed once adopted)."""
        return f"{self._base}:members"

    def heartbeat(self, replica: str) -> str:
        """String with a short TTL, renewed every second while the replica runs."""
        return f"{self._base}:alive:{replica}"

    def adopting(self, replica: str) -> str:
        """Lock (SET NX PX) held by the survivor that drains a dead replica's session."""
        return f"{self._base}:adopt:{replica}"
