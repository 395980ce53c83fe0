"""The stronger network's numeric inputs: piecewise-linear encoding over the deciles, log scale for heavy tails."""

import numpy as np
import pandas as pd
import pytest

from kfpc.components.train import features
from kfpc.components.train.model import NumericEncoder
from tests.components.train.conftest import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(0)

    def frame(rows):
        amount = rng.lognormal(mean=3.0, sigma=2.0, size=rows)
        amount[::9] = np.nan
        return pd.DataFrame({"amount": amount, "normal": rng.normal(size=rows), "flag": rng.random(rows) < 0.3,
                             "label": rng.choice(["a", "b"], size=rows)})

    return write_dataset(tmp_path_factory.mktemp("encoding") / "data", frame(2000), frame(200))


@pytest.mark.parametrize("with_artifact", [True, False])
def test_heavy_tails_are_log_scaled_and_numbers_get_decile_bins(dataset, tmp_path, with_artifact):
    statistics_dir = None
    if with_artifact:
        from kfpc.components.statistics import core as statistics

        statistics_dir = tmp_path / "stats"
        statistics.write_statistics(dataset, statistics_dir)
    spec = features.build_spec(dataset, "label", statistics_dir=statistics_dir)
    by_name = {f.name: f for f in spec.features}
    amount, normal, flag = by_name["amount"], by_name["normal"], by_name["flag"]
    assert amount.log_scale and not normal.log_scale and not flag.log_scale
    assert len(amount.boundaries) == features.QUANTILE_BINS + 1 and amount.boundaries == sorted(amount.boundaries)
    assert flag.boundaries is None  # a 0/1 column: the scalar says it all
    # log1p(median of a lognormal(3, 2)) ~ 3; the log inter-decile range / 2.563 ~ 2 (sampling error aside)
    assert abs(amount.log_center - 3.0) < 0.5 and abs(amount.log_std - 2.0) < 0.5
    assert {f.name: f.numeric_encoding() for f in spec.features} == {"amount": "log_piecewise_linear", "normal": "piecewise_linear", "flag": "standardized"}


def test_numeric_encoder_outputs():
    layer = NumericEncoder(mean=10.0, std=5.0, boundaries=[0.0, 1.0, 3.0], log_scale=True, log_center=1.0,
                           log_std=2.0)
    out = layer(np.array([-5.0, 0.5, 2.0, 100.0, np.nan])).numpy()
    assert out.shape == (5, 4)
    np.testing.assert_allclose(out[:, 0], [(0 - 1) / 2, (np.log1p(0.5) - 1) / 2, (np.log1p(2.0) - 1) / 2,
                                           (np.log1p(100.0) - 1) / 2, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], [0, 0, 0, 0, 1])
    np.testing.assert_allclose(out[:, 2:], [[0, 0], [0.5, 0], [1, 0.5], [1, 1], [0, 0]])
    assert NumericEncoder(**{k: v for k, v in layer.get_config().items()
                             if k in ("mean", "std", "boundaries", "log_scale", "log_center", "log_std")}
                          ).get_config()["mean"] == 10.0
