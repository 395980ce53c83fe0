"""Core tests of ingest: deterministic hash split, formats, bad input with clear errors, nothing partial."""

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfpc.components import artifacts, types
from kfpc.components.ingest import core


def _read(out, split):
    return artifacts.read_split(out, split).to_pandas()


def test_penguins_split_is_deterministic_and_complete(tmp_path, penguins_csv):
    first = core.ingest(penguins_csv, tmp_path / "a")
    second = core.ingest(penguins_csv, tmp_path / "b")
    assert first.rows == second.rows
    assert sum(first.rows.values()) == 344
    assert 0.1 < first.rows["eval"] / 344 < 0.3
    a = pd.concat([_read(tmp_path / "a", s) for s in ("train", "eval")])
    b = pd.concat([_read(tmp_path / "b", s) for s in ("train", "eval")])
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    # "NA" in the CSV is a missing value, and integer columns keep their type with nulls.
    assert first.columns["body_mass_g"] == "int64"
    assert a["sex"].isna().sum() == 11
    meta = first.metadata()
    assert meta[types.ROWS] == first.rows and meta[types.SPLIT_NAMES] == ["train", "eval"]


def test_key_column_keeps_rows_with_the_same_key_together(tmp_path):
    frame = pd.DataFrame({"user": [f"u{i % 50}" for i in range(1000)], "x": range(1000)})
    src = tmp_path / "in.parquet"
    frame.to_parquet(src)
    result = core.ingest(str(src), tmp_path / "out", key_column="user", eval_fraction=0.3)
    train_users = set(_read(tmp_path / "out", "train")["user"])
    eval_users = set(_read(tmp_path / "out", "eval")["user"])
    assert not train_users & eval_users
    assert sum(result.rows.values()) == 1000


def test_split_of_old_rows_does_not_change_when_data_grows(tmp_path):
    frame = pd.DataFrame({"id": range(2000), "v": [i * 0.5 for i in range(2000)]})
    frame.iloc[:1000].to_csv(tmp_path / "old.csv", index=False)
    frame.to_csv(tmp_path / "new.csv", index=False)
    core.ingest(str(tmp_path / "old.csv"), tmp_path / "o", key_column="id")
    core.ingest(str(tmp_path / "new.csv"), tmp_path / "n", key_column="id")
    old_eval = set(_read(tmp_path / "o", "eval")["id"])
    new_eval = set(_read(tmp_path / "n", "eval")["id"])
    assert old_eval == {i for i in new_eval if i < 1000}


def test_eval_fraction_is_respected_on_many_rows(tmp_path):
    frame = pd.DataFrame({"a": range(20000)})
    frame.to_parquet(tmp_path / "x.parquet")
    result = core.ingest(str(tmp_path / "x.parquet"), tmp_path / "out", eval_fraction=0.25)
    assert abs(result.rows["eval"] / 20000 - 0.25) < 0.02


def test_csv_and_parquet_of_the_same_rows_split_identically(tmp_path, penguins_csv):
    table = core.read_batches(penguins_csv)[1]
    pq.write_table(pa.Table.from_batches(list(table)), tmp_path / "p.parquet")
    from_csv = core.ingest(penguins_csv, tmp_path / "c")
    from_parquet = core.ingest(str(tmp_path / "p.parquet"), tmp_path / "q")
    assert from_csv.rows == from_parquet.rows


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"a,b,c\n", "header only"),
        (b"a;b;c\n1;2;3\n", "delimiter is probably not ','"),
        (b"a,b\n1,\xff\xfe\n", "not valid UTF-8"),
        (b"a,a\n1,2\n", "duplicate column name 'a'"),
        (b"a,b\n1,2,3\n", "cannot parse as CSV"),
    ],
)
def test_bad_csv_is_rejected_with_a_clear_message_and_no_output(tmp_path, content, message):
    src = tmp_path / "bad.csv"
    src.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(core.IngestError, match=message) as info:
        core.ingest(str(src), out)
    assert str(src) in str(info.value)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out")]


def test_truncated_parquet_is_rejected(tmp_path):
    pd.DataFrame({"a": range(100)}).to_parquet(tmp_path / "ok.parquet")
    data = (tmp_path / "ok.parquet").read_bytes()
    (tmp_path / "t.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(core.IngestError, match="not a readable Parquet file"):
        core.ingest(str(tmp_path / "t.parquet"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_file_and_unknown_key_column(tmp_path, penguins_csv):
    with pytest.raises(core.IngestError, match="no such file"):
        core.ingest(str(tmp_path / "nope.csv"), tmp_path / "out")
    with pytest.raises(core.IngestError, match="key_column 'nope' is not a column"):
        core.ingest(penguins_csv, tmp_path / "out", key_column="nope")
    with pytest.raises(core.IngestError, match="eval_fraction"):
        core.ingest(penguins_csv, tmp_path / "out", eval_fraction=1.5)


def test_single_row_cannot_fill_two_splits(tmp_path):
    (tmp_path / "one.csv").write_text("a,b\n1,x\n")
    with pytest.raises(core.IngestError, match="would be empty"):
        core.ingest(str(tmp_path / "one.csv"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_all_null_column_is_stored_as_string(tmp_path):
    (tmp_path / "n.csv").write_text("a,b\n" + "".join(f"{i},\n" for i in range(50)))
    result = core.ingest(str(tmp_path / "n.csv"), tmp_path / "out")
    assert result.columns["b"] == "string"


def test_gs_uri_maps_to_the_fuse_mount():
    from kfpc.components._fs import local_path

    assert local_path("gs://bucket/a/b.csv") == "/gcs/bucket/a/b.csv"
    assert local_path("file:///x/y") == "/x/y"
    assert local_path("/x/y") == "/x/y"


def test_bundled_data_resolves_inside_the_installed_package(tmp_path):
    result = core.ingest("bundled:penguins.csv", tmp_path / "out")
    assert sum(result.rows.values()) == 344
    with pytest.raises(core.IngestError, match="no such file"):
        core.ingest("bundled:nope.csv", tmp_path / "out2")


def test_drop_columns_and_numeric_columns_keep_every_row_in_its_split(tmp_path):
    frame = pd.DataFrame({
        "id": range(400),
        "price": [("n/a?" if i % 40 == 0 else "unknown" if i % 97 == 0 else f"{i * 1.25}") for i in range(400)],
        "notes": [None] * 400,
        "y": [i % 2 for i in range(400)],
    })
    frame.to_csv(tmp_path / "in.csv", index=False)
    plain = core.ingest(str(tmp_path / "in.csv"), tmp_path / "a")
    assert plain.columns["price"] == "string"
    result = core.ingest(str(tmp_path / "in.csv"), tmp_path / "b", drop_columns=["notes", "not-in-this-span"],
                         numeric_columns=["price"])
    assert result.columns == {"id": "int64", "price": "double", "y": "int64"}
    assert result.dropped_columns == ["notes"]
    assert result.coerced_to_null == {"price": 10 + 4}  # 0, 40, ..., 360 and 97, 194, 291, 388
    meta = result.metadata()
    assert meta["coerced_to_null"] == {"price": 14} and meta["dropped_columns"] == ["notes"]
    for split in ("train", "eval"):
        before, after = _read(tmp_path / "a", split), _read(tmp_path / "b", split)
        assert list(before["id"]) == list(after["id"])  # the split hashes the row as read
        assert after["price"].isna().sum() == before["price"].isin(["n/a?", "unknown"]).sum()
    with pytest.raises(core.IngestError, match="numeric_columns: 'cost' is not a column"):
        core.ingest(str(tmp_path / "in.csv"), tmp_path / "c", numeric_columns=["cost"])
    assert not (tmp_path / "c").exists()


def test_rows_with_equal_features_land_in_one_split_whatever_their_labels(tmp_path):
    """With the label in the row hash, a feature row seen with both labels was split by its label: eval got
    exactly the label training never saw for it (1,073 of 6,307 eval rows of a real credit card table)."""
    frame = pd.DataFrame({"a": [i % 40 for i in range(2000)], "b": [i % 7 for i in range(2000)],
                          "y": [(i // 280) % 2 for i in range(2000)]})
    frame.to_csv(tmp_path / "in.csv", index=False)
    core.ingest(str(tmp_path / "in.csv"), tmp_path / "out", label="y")
    def feature_rows(out, split):
        table = _read(out, split)
        return set(zip(table["a"], table["b"], strict=True))

    assert not feature_rows(tmp_path / "out", "train") & feature_rows(tmp_path / "out", "eval")
    assert 0 < len(_read(tmp_path / "out", "eval")) < len(frame)
    core.ingest(str(tmp_path / "in.csv"), tmp_path / "with_label")
    assert feature_rows(tmp_path / "with_label", "train") & feature_rows(tmp_path / "with_label", "eval"), \
        "hashing the label too splits equal feature rows by label (what the label parameter prevents)"
