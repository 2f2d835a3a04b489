"""Train the propensity model and export it to ONNX (``models/propensity.onnx``).

Usage (training dependencies are an optional extra, not needed at run time)::

    .venv/bin/pip install -c constraints.txt -e '.[train]'
    .venv/bin/python models/train_propensity.py [--samples 60000] [--seed 7]

The outcomes are simulated: for every (prompt kind, lifecycle stage, VIP, R, F, M) the
"true" chance that an associate's prompt is accepted and converts is the documented prior
(:func:`recommender.propensity.prior`) with the interactions retail practice expects —
cross-sell and replenishment land better with frequent buyers, win-back better with
members who used to buy often, greetings better with VIPs — and each simulated prompt
converts with that chance. A logistic regression on the features of
:func:`recommender.propensity.features` learns it back; accuracy on a held-out fifth is
written to ``models/propensity.metrics.json``. Replace the simulation with real outcomes
(the prompt records and conversions in Redis) once a store has them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score  # type: ignore[import-untyped]

from broker_config.contract import PromptKind
from recommender.catalog import Lifecycle
from recommender.propensity import KINDS, N_FEATURES, STAGES, features, prior

HERE = Path(__file__).resolve().parent


def true_chance(kind: PromptKind, stage: Lifecycle, vip: bool, r: int, f: int, m: int) -> float:
    p = prior(kind, stage, vip, r, f, m)
    if kind in (PromptKind.CROSS_SELL, PromptKind.REPLENISHMENT_DUE):
        p *= 0.7 + 0.12 * f
    if kind is PromptKind.WIN_BACK:
        p *= 0.6 + 0.15 * f * (6 - r) / 5
    if kind is PromptKind.GREET_VIP and vip:
        p *= 1.2
    p *= 0.9 + 0.04 * m
    return min(max(p, 0.005), 0.98)


def simulate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    rng = random.Random(seed)
    x = np.zeros((n, N_FEATURES), dtype=np.float32)
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        key = (
            rng.choice(KINDS),
            rng.choice(STAGES),
            rng.random() < 0.3,
            rng.randint(1, 5),
            rng.randint(1, 5),
            rng.randint(1, 5),
        )
        x[i] = features(*key)
        y[i] = rng.random() < true_chance(*key)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "propensity.onnx")
    args = parser.parse_args()

    x, y = simulate(args.samples, args.seed)
    cut = int(len(y) * 0.8)
    model = LogisticRegression(max_iter=2000, C=1.0)
    model.fit(x[:cut], y[:cut])
    p_test = model.predict_proba(x[cut:])[:, 1]
    truth = np.array(
        [
            true_chance(
                KINDS[int(np.argmax(r[: len(KINDS)]))],
                STAGES[int(np.argmax(r[len(KINDS) : len(KINDS) + len(STAGES)]))],
                bool(r[-4]),
                round(r[-3] * 5),
                round(r[-2] * 5),
                round(r[-1] * 5),
            )
            for r in x[cut:]
        ]
    )
    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    data = onx.SerializeToString()
    args.out.write_bytes(data)
    metrics = {
        "model": "sklearn LogisticRegression -> skl2onnx",
        "features": f"{N_FEATURES}: kind one-hot (10), lifecycle one-hot (5), vip, r/5, f/5, m/5",
        "training": "simulated outcomes (see the script's docstring)",
        "samples": args.samples,
        "seed": args.seed,
        "test_samples": len(y) - cut,
        "base_rate": round(float(y.mean()), 4),
        "test_auc": round(float(roc_auc_score(y[cut:], p_test)), 4),
        "test_log_loss": round(float(log_loss(y[cut:], p_test)), 4),
        "test_brier": round(float(brier_score_loss(y[cut:], p_test)), 4),
        "mean_abs_error_vs_true_chance": round(float(np.mean(np.abs(p_test - truth))), 4),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    metrics_path = args.out.with_suffix(".metrics.json")
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print(f"wrote {args.out} and {metrics_path}")


if __name__ == "__main__":
    main()
