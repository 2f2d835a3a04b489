"""The propensity model: the shipped ONNX model becomes a look-up table; a missing file or
one with the wrong inputs gives the documented prior (and one clear log line)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from broker_config.contract import PromptKind
from recommender.catalog import Lifecycle
from recommender.propensity import DEFAULT_MODEL, N_FEATURES, Propensity, features, prior
from tests.conftest import REPO

WRONG_INPUTS = REPO / "tests" / "data" / "propensity_3_inputs.onnx"  # a real model over 3 features


def test_shipped_model_loads_as_a_table_of_probabilities() -> None:
    model = Propensity.load(DEFAULT_MODEL)
    assert model.source == "onnx:propensity.onnx"
    values = [model(*key) for key in Propensity.grid()]
    assert all(0.0 < v < 1.0 for v in values)
    # It learned what the simulation put in: VIPs take a greeting better, churn risks worse.
    assert model(PromptKind.GREET_VIP, Lifecycle.ACTIVE, True, 3, 3, 3) > model(
        PromptKind.GREET_VIP, Lifecycle.ACTIVE, False, 3, 3, 3
    )
    assert model(PromptKind.CROSS_SELL, Lifecycle.ACTIVE, False, 3, 5, 3) > model(
        PromptKind.CROSS_SELL, Lifecycle.CHURN_RISK, False, 3, 1, 3
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.onnx", "no propensity model"),
        (lambda tmp: WRONG_INPUTS, f"expected one input of {N_FEATURES} features"),
        (lambda tmp: (tmp / "junk.onnx", (tmp / "junk.onnx").write_bytes(b"not a model"))[0], "unusable"),
    ],
)
def test_no_usable_model_means_the_prior(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: object, message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with caplog.at_level(logging.INFO, logger="recommender.propensity"):
        model = Propensity.load(path)
    assert model.source == "prior"
    assert message in caplog.text and str(path) in caplog.text
    key = (PromptKind.WIN_BACK, Lifecycle.LAPSING, False, 2, 4, 3)
    assert model(*key) == pytest.approx(prior(*key))


def test_features_are_one_hot_plus_scaled_scores() -> None:
    row = features(PromptKind.BIRTHDAY, Lifecycle.WON_BACK, True, 5, 1, 3)
    assert len(row) == N_FEATURES and sum(row[:10]) == 1 and sum(row[10:15]) == 1
    assert row[list(PromptKind).index(PromptKind.BIRTHDAY)] == 1.0
    assert row[-4:] == [1.0, 1.0, 0.2, 0.6]
