"""batch_size=0 chooses the batch size from the number of training rows (the pipelines' default)."""

import pytest

from kfpc.components.train import core


@pytest.mark.parametrize(
    "rows, expected",
    [(0, 32), (267, 32), (5_000, 64), (10_000, 128), (40_000, 512), (100_000, 1024), (10_000_000, 1024)],
)
def test_auto_batch_size_grows_with_rows_between_32_and_1024(rows, expected):
    assert core.auto_batch_size(rows) == expected


def test_batch_size_zero_trains_with_the_chosen_size_and_records_it(penguins_dataset, tmp_path):
    result = core.train(penguins_dataset, tmp_path / "model", label="species", epochs=1, batch_size=0)
    assert result.card["hyperparameters"]["batch_size"] == core.auto_batch_size(267) == 32


def test_negative_batch_size_is_refused(penguins_dataset, tmp_path):
    with pytest.raises(core.TrainError, match="batch_size must be positive, or 0"):
        core.train(penguins_dataset, tmp_path / "model", label="species", batch_size=-1)
    assert not (tmp_path / "model").exists()
