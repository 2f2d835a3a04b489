"""Propensity: how likely a prompt of this kind is to be accepted and convert, for this
kind of customer. An ONNX model (trained by ``models/train_propensity.py``) run by
onnxruntime, or a documented prior when there is no usable model.

Features (in this order, all in 0..1): one-hot of the prompt kind (10, in PromptKind
order), one-hot of the lifecycle stage (5, in Lifecycle order), VIP tier, and the R, F, M
scores divided by 5. The features are discrete, so at load the model is run once over
every combination (10 x 5 x 2 x 125 = 12 500 rows, one onnxruntime call) and a decision
is a table look-up — the hot path never waits for the runtime.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from broker_config.contract import PromptKind
from recommender.catalog import Lifecycle

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "propensity.onnx"
KINDS = list(PromptKind)
STAGES = list(Lifecycle)
N_FEATURES = len(KINDS) + len(STAGES) + 4

#: The fallback prior: acceptance-and-conversion rates by kind from retail clienteling
#: practice (service prompts are accepted more often than offers), scaled by lifecycle.
PRIOR_BY_KIND: dict[PromptKind, float] = {
    PromptKind.GREET_VIP: 0.60,
    PromptKind.REPLENISHMENT_DUE: 0.45,
    PromptKind.CROSS_SELL: 0.20,
    PromptKind.BIRTHDAY: 0.50,
    PromptKind.EXPIRING_POINTS: 0.40,
    PromptKind.COMPLAINT_FOLLOW_UP: 0.55,
    PromptKind.WIN_BACK: 0.25,
    PromptKind.LONG_DWELL_HELP: 0.35,
    PromptKind.JOIN_INVITE: 0.15,
    PromptKind.OPEN_TILL: 0.90,
}
PRIOR_BY_STAGE: dict[Lifecycle, float] = {
    Lifecycle.NEW: 0.9,
    Lifecycle.ACTIVE: 1.0,
    Lifecycle.LAPSING: 0.8,
    Lifecycle.CHURN_RISK: 0.6,
    Lifecycle.WON_BACK: 1.0,
}

Key = tuple[PromptKind, Lifecycle, bool, int, int, int]


def features(kind: PromptKind, stage: Lifecycle, vip: bool, r: int, f: int, m: int) -> list[float]:
    row = [0.0] * N_FEATURES
    row[KINDS.index(kind)] = 1.0
    row[len(KINDS) + STAGES.index(stage)] = 1.0
    row[-4:] = [1.0 if vip else 0.0, r / 5, f / 5, m / 5]
    return row


def prior(kind: PromptKind, stage: Lifecycle, vip: bool, r: int, f: int, m: int) -> float:
    """The documented fallback: kind rate x stage factor, nudged by frequency and VIP."""
    p = PRIOR_BY_KIND[kind] * PRIOR_BY_STAGE[stage] * (0.8 + 0.1 * f) / 1.1 * (1.1 if vip else 1.0)
    return float(min(max(p, 0.01), 0.99))


class Propensity:
    """A look-up table over every feature combination; ``source`` says where it came from."""

    def __init__(self, table: dict[Key, float], source: str) -> None:
        self._table = table
        self.source = source

    def __call__(self, kind: PromptKind, stage: Lifecycle, vip: bool, r: int, f: int, m: int) -> float:
        return self._table[(kind, stage, vip, r, f, m)]

    @staticmethod
    def grid() -> list[Key]:
        return list(itertools.product(KINDS, STAGES, (False, True), *(range(1, 6),) * 3))

    @classmethod
    def from_prior(cls) -> Propensity:
        return cls({k: prior(*k) for k in cls.grid()}, "prior")

    @classmethod
    def load(cls, path: Path) -> Propensity:
        """The ONNX model at ``path``; on any problem one clear log line and the prior."""
        if not path.exists():
            log.info("no propensity model at %s; using the documented prior", path)
            return cls.from_prior()
        try:
            import onnxruntime as ort

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            inputs = session.get_inputs()
            if len(inputs) != 1 or inputs[0].shape[-1] != N_FEATURES:
                shape = [i.shape for i in inputs]
                raise ValueError(f"expected one input of {N_FEATURES} features, the model has {shape}")
            grid = cls.grid()
            x = np.asarray([features(*k) for k in grid], dtype=np.float32)
            out = session.run(None, {inputs[0].name: x})
            probs = _positive_class(out)
        except Exception as exc:  # an unusable model must not stop the store: say so, use the prior
            log.error("propensity model %s unusable (%s); using the documented prior", path, exc)
            return cls.from_prior()
        return cls({k: float(p) for k, p in zip(grid, probs, strict=True)}, f"onnx:{path.name}")


def _positive_class(outputs: list[object]) -> np.ndarray[Any, Any]:
    """P(positive) from a classifier's outputs: a probability array or skl2onnx's dicts."""
    for out in outputs[1:] + outputs[:1]:
        if isinstance(out, np.ndarray) and out.ndim == 2 and out.shape[1] == 2:
            return out[:, 1]
        if isinstance(out, list) and out and isinstance(out[0], dict):
            return np.asarray([row[1] for row in out])
    raise ValueError("model gives no class probabilities")
