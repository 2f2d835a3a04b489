"""A message the recommender publishes: a prompt, an acknowledgement or a dead letter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outbound:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    #: (unsent key, prompt id): once the broker confirmed it, :meth:`Recommender.mark_sent
    #: <recommender.engine.Recommender.mark_sent>`.
    unsent: tuple[str, str] | None = None
