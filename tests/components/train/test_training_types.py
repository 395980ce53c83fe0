"""Column types users have: booleans, dates and timestamps, ISO-date text; excluded columns."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfpc.components import contract
from kfpc.components.contract import signature
from kfpc.components.train import core
from kfpc.components.train import features as F
from kfpc.components.train.features import TrainInputError


def typed_csv(path, rows: int, seed: int):
    """A CSV as users have them: True/False, a date, a timestamp with a time of day, a number, a label that
    depends on the flag, on the weekend and on the hour."""
    rng = np.random.default_rng(seed)
    flag = rng.random(rows) < 0.5
    day = pd.Timestamp("2013-01-01") + pd.to_timedelta(rng.integers(0, 730, rows), unit="D")
    hour = rng.integers(0, 24, rows)
    stamp = day + pd.to_timedelta(hour, unit="h") + pd.to_timedelta(17, unit="min")
    x = rng.normal(0, 1, rows)
    weekend = np.asarray(day.dayofweek >= 5)
    label = np.where(2.5 * flag + 2.5 * weekend + 0.5 * x - 2.5 + rng.normal(0, 0.3, rows) > 0, "yes", "no")
    frame = pd.DataFrame({"flag": np.where(flag, "True", "False"), "day": day.strftime("%Y-%m-%d"),
                          "stamp": stamp.strftime("%Y-%m-%d %H:%M:%S"), "x": x.round(4), "label": label})
    frame.loc[rng.random(rows) < 0.05, "day"] = ""  # missing dates
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def typed_model(tmp_path_factory):
    from kfpc.components.ingest import core as ingest

    root = tmp_path_factory.mktemp("typed")
    typed_csv(root / "typed.csv", 1_200, 0)
    ingest.ingest(str(root / "typed.csv"), root / "data")
    result = core.train(root / "data", root / "model", label="label", epochs=25, patience=6, batch_size=32,
                        learning_rate=0.01, seed=3, verbose=0)
    return root, result


def test_ingested_csv_types_become_bool_and_datetime_features(typed_model):
    root, result = typed_model
    schema = pq.read_schema(root / "data" / "Split-train" / "data.parquet")
    assert [str(schema.field(n).type)[:9] for n in ("flag", "day", "stamp")] == ["bool", "date32[da", "timestamp"]
    features = {f["name"]: f for f in contract.read_card(root / "model")["features"]}
    assert features["flag"] == {"name": "flag", "input": "flag", "dtype": "float64", "kind": "numeric",
                                "value_type": "bool"}
    assert features["day"] == {"name": "day", "input": "day", "dtype": "string", "kind": "datetime",
                               "value_type": "date", "derived": ["year", "month", "day_of_week", "day_of_year"]}
    assert features["stamp"]["derived"][-1] == "hour" and features["stamp"]["value_type"] == "timestamp"
    assert result.metrics["validation"]["accuracy"] > 0.85, result.metrics


def test_the_model_reads_booleans_and_weekdays_from_raw_values(typed_model):
    root, _ = typed_model
    predictor = contract.load_predictor(root / "model")
    saturday, monday = "2014-03-08", "2014-03-10"
    rows = {
        "flag": [True, False, True, False, None],
        "day": [saturday, saturday, monday, monday, None],
        "stamp": [f"{saturday}T05:17:00", dt.datetime(2014, 3, 8, 5, 17), f"{monday} 05:17:00",
                  np.datetime64("2014-03-10T05:17"), None],
        "x": [0.0, 0.0, 0.0, 0.0, 0.0],
    }
    out = predictor.predict(rows)
    yes = out["probabilities"][:, 1]
    assert yes[0] > 0.9 and yes[3] < 0.1, yes  # flag and weekend vs neither
    assert yes[0] > yes[1] and yes[0] > yes[2], yes  # each raises the odds
    assert np.isfinite(out["probabilities"]).all()
    # 0/1 numbers are the same input as booleans; date objects the same as their ISO text
    same = predictor.predict({**rows, "flag": [1, 0, 1.0, 0.0, np.nan],
                              "day": [dt.date(2014, 3, 8), saturday, monday, dt.date(2014, 3, 10), ""]})
    np.testing.assert_allclose(same["probabilities"], out["probabilities"], rtol=1e-6)
    with pytest.raises(signature.ModelInputError, match="'day' is a date but row 1 holds '08/03/2014'"):
        predictor.predict({**rows, "day": [saturday, "08/03/2014", None, None, None]})


def test_evaluation_reads_bool_and_date_columns_like_the_predictor(typed_model, tmp_path):
    from kfpc.components.evaluate import core as evaluate

    root, _ = typed_model
    result = evaluate.evaluate(root / "data", root / "model", tmp_path / "blessing")
    frame = pq.read_table(root / "data" / "Split-eval" / "data.parquet")
    predicted = contract.load_predictor(root / "model").predict(
        {name: frame.column(name) for name in ("flag", "day", "stamp", "x")})["classes"]
    accuracy = float((predicted == np.asarray(frame.column("label").to_pylist(), dtype=object)).mean())
    assert result.metrics["accuracy"] == pytest.approx(accuracy)
    assert accuracy > 0.85


def test_datetime_encoder_matches_python_calendar():
    from kfpc.components.train.model import DateTimeEncoder

    rng = np.random.default_rng(1)
    days = [dt.date(1890, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 70_000, 300)]
    days += [dt.date(2000, 2, 29), dt.date(1900, 3, 1), dt.date(2024, 12, 31), dt.date(2023, 1, 1)]
    text = [d.isoformat() + (f"T{i % 24:02d}:30:00" if i % 2 else "") for i, d in enumerate(days)]
    encoded = DateTimeEncoder(2000.0, 50.0, with_time=True)(np.array(text, dtype=object)).numpy()
    assert encoded.shape == (len(days), 1 + 12 + 7 + 2 + 24 + 1)
    for i, day in enumerate(days):
        row = encoded[i]
        assert row[0] == pytest.approx((day.year - 2000) / 50, abs=1e-6)
        assert row[1:13].argmax() + 1 == day.month and row[1:13].sum() == 1
        assert row[13:20].argmax() == day.weekday() and row[13:20].sum() == 1
        angle = 2 * np.pi * (day.timetuple().tm_yday - 1) / 366
        assert row[20:22] == pytest.approx([np.sin(angle), np.cos(angle)], abs=1e-5)
        assert row[22:46].argmax() == (i % 24 if i % 2 else 0) and row[-1] == 0
    missing = DateTimeEncoder(2000.0, 50.0, with_time=True)(
        np.array(["", "2023-02-29", "2013-13-01", "1999-12-31T24:00", "08/03/2014", "2013-1-1"], dtype=object)
    ).numpy()
    assert (missing[:, :-1] == 0).all() and (missing[:, -1] == 1).all()
    offsets = DateTimeEncoder(2000.0, 50.0, with_time=True)(
        np.array(["2013-01-05T05:17:00Z", "2013-01-05 05:17:00.123456+0100", "2013-01-05T05:17"], dtype=object)
    ).numpy()
    assert (offsets == offsets[0]).all() and offsets[0, -1] == 0  # the time as written, offsets ignored


def _write(root, frame):
    for split in ("train", "eval"):
        (root / f"Split-{split}").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / f"Split-{split}" / "data.parquet")
    return root


def test_iso_text_is_a_date_unless_declared_categorical(tmp_path):
    rng = np.random.default_rng(2)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 400, 200), unit="D")
    frame = pd.DataFrame({"when": days.strftime("%Y-%m-%dT%H:%M:%SZ"), "opened": days.date, "x": rng.normal(size=200),
                          "label": rng.choice(["a", "b"], 200)})
    frame.loc[:9, "when"] = None
    root = _write(tmp_path / "data", frame)
    spec = F.build_spec(root, "label")
    by_name = {f.name: f for f in spec.features}
    assert (by_name["when"].kind, by_name["when"].value_type, by_name["when"].with_time) == ("datetime", "iso_text",
                                                                                             False)
    assert by_name["when"].missing_fraction == pytest.approx(10 / 200)
    assert by_name["when"].mean == pytest.approx(np.mean(days.year[10:]))
    assert by_name["opened"].kind == "datetime"
    spec = F.build_spec(root, "label", categorical_features=["when", "opened"])
    by_name = {f.name: f for f in spec.features}
    assert by_name["when"].kind == by_name["opened"].kind == "categorical"
    assert by_name["opened"].vocabulary[0][:4] == "2020" or by_name["opened"].vocabulary[0][:4] == "2021"


def test_exclude_names_the_unknown_column_and_never_the_label(tmp_path):
    frame = pd.DataFrame({"id": np.arange(50), "day": pd.date_range("2020-01-01", periods=50).date,
                          "x": np.linspace(0, 1, 50), "label": ["a", "b"] * 25})
    root = _write(tmp_path / "data", frame)
    with pytest.raises(TrainInputError) as info:
        F.build_spec(root, "label", exclude=["id", "idd"])
    assert "['idd']" in str(info.value) and "['id', 'day', 'x', 'label']" in str(info.value)
    with pytest.raises(TrainInputError, match="the label 'label' cannot be excluded"):
        F.build_spec(root, "label", exclude=["label"])
    spec = F.build_spec(root, "label", exclude=["id", "day"])
    assert [f.name for f in spec.features] == ["x"]
    assert [f.name for f in F.build_spec(root, "label", exclude="id").features] == ["day", "x"]
    with pytest.raises(TrainInputError, match="no feature columns besides the label 'label' and the excluded"):
        F.build_spec(root, "label", exclude=["id", "day", "x"])


def test_a_column_of_an_unsupported_type_names_exclude_as_the_fix(tmp_path):
    frame = pd.DataFrame({"tags": [["a"], ["b", "c"]] * 10, "x": np.arange(20.0), "label": ["a", "b"] * 10})
    root = _write(tmp_path / "data", frame)
    with pytest.raises(TrainInputError, match=r"column 'tags' has type list<.*exclude=\['tags'\]"):
        F.build_spec(root, "label")
    assert [f.name for f in F.build_spec(root, "label", exclude=["tags"]).features] == ["x"]


def test_a_damaged_data_page_is_an_input_error_naming_the_file(tmp_path):
    """A corrupt Parquet data page was Arrow's bare OSError, without the file (issue 18)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kfpc.components._fs import parquet_batches
    from kfpc.components.evaluate.core import EvaluationError
    from kfpc.components.train import features as F

    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": [float(i) for i in range(5000)], "s": [f"v{i}" for i in range(5000)]}), path,
                   compression="snappy")
    data = bytearray(path.read_bytes())
    data[200:1200] = b"\xff" * 1000  # inside the first column chunk's data page
    path.write_bytes(bytes(data))
    for error in (F.TrainInputError, EvaluationError):
        with pytest.raises(error, match=r"data.parquet: the Parquet file is damaged or unreadable: "):
            for _ in parquet_batches(path, error, batch_size=1000):
                pass
    with pytest.raises(F.TrainInputError, match="data.parquet: the Parquet file is damaged"):
        F.compute_stats(path, ["x"], ["s"], [])


def test_a_huge_text_cell_stays_out_of_the_vocabulary(tmp_path):
    """A 10 MB cell in a text column became a 10 MB lookup table in the SavedModel (issue 18's echo case)."""
    import pandas as pd

    from kfpc.components.ingest import core as ingest_core
    from kfpc.components.train import features as F

    frame = pd.DataFrame({"x": [float(i % 17) for i in range(300)], "c": ["a", "b", "c"] * 100,
                          "notes": [None] * 300, "y": ["p", "q"] * 150})
    frame.loc[5, "c"] = "x" * 2_000_000
    frame.loc[7, "notes"] = "n" * 2_000_000
    frame.to_csv(tmp_path / "t.csv", index=False)
    ingest_core.ingest(str(tmp_path / "t.csv"), tmp_path / "data", label="y")
    spec = F.build_spec(tmp_path / "data", "y")
    by_name = F.feature_by_name(spec)
    assert "notes" not in by_name  # only free text: not a feature
    assert sorted(by_name["c"].vocabulary) == ["a", "b", "c"]
