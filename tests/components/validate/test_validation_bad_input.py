"""Bad input through `kfpc validate` and the cores: a clear message, exit code 2, nothing half-written."""

import argparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfpc.components.statistics import core as stats_core
from kfpc.components.validate import cli


def run_cli(capsys, *argv):
    parser = argparse.ArgumentParser(prog="kfpc")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["validate", *map(str, argv)])
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"a,b,c\n", "header only, no data rows"),
    (b"a;b;c\n1;2;3\n4;5;6\n", "the delimiter is probably not ','"),
    (b"name,value\n\xff\xfe,1\n", "not valid UTF-8"),
])
def test_bad_csv_files_exit_2_with_the_file_named(tmp_path, capsys, content, message):
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    code, out, err = run_cli(capsys, path)
    assert code == 2 and message in err and str(path) in err and out == ""


def test_truncated_parquet_fails_and_leaves_no_statistics(tmp_path, capsys):
    dataset = tmp_path / "data" / "Split-train"
    dataset.mkdir(parents=True)
    pq.write_table(pa.table({"x": np.arange(1000)}), dataset / "data.parquet")
    raw = (dataset / "data.parquet").read_bytes()
    (dataset / "data.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(stats_core.StatisticsError, match="not a readable Parquet file"):
        stats_core.write_statistics(tmp_path / "data", tmp_path / "stats")
    assert not (tmp_path / "stats").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no partial scratch folder either
    code, _, err = run_cli(capsys, dataset / "data.parquet")
    assert code == 2 and "not a readable Parquet file" in err


def test_duplicate_column_names(tmp_path, capsys):
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a\n1,2,3\n")
    code, _, err = run_cli(capsys, path)
    assert code == 2 and "duplicate column name 'a'" in err
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(stats_core.StatisticsError, match=r"duplicate column names \['a'\]"):
        stats_core.generate_statistics(table)


def test_mixed_types_column(tmp_path, capsys):
    with pytest.raises(stats_core.StatisticsError, match="column 'v' has mixed types"):
        stats_core.generate_statistics(pd.DataFrame({"v": [1, "two", 3.0]}))
    # in a CSV a mixed column is text: against a schema that says INT it is UNEXPECTED_DATA_TYPE
    (tmp_path / "base.csv").write_text("v\n1\n2\n3\n")
    (tmp_path / "mixed.csv").write_text("v\n1\ntwo\n3\n")
    code, out, _ = run_cli(capsys, tmp_path / "mixed.csv", "--baseline", tmp_path / "base.csv")
    assert code == 1 and "v: UNEXPECTED_DATA_TYPE: Expected data of type: INT but got STRING" in out


def test_all_null_column_single_row_inf_nan_are_summarized(tmp_path, capsys):
    path = tmp_path / "odd.csv"
    path.write_text("empty,x,s\n,inf,a\n,NaN,b\n,-inf,a\n,1.5,\n")
    stats = stats_core.generate_statistics(_read(path))
    empty = next(f for f in stats.features if f.path.step[0] == "empty")
    assert empty.string_stats.common_stats.num_missing == 4 and empty.string_stats.common_stats.num_non_missing == 0
    code, out, err = run_cli(capsys, path)  # schema inferred from the same data: nothing to report
    assert code == 0 and out == ""
    one = tmp_path / "one.csv"
    one.write_text("a,b\n1,x\n")
    assert run_cli(capsys, one)[0] == 0


def _read(path):
    from kfpc.components.ingest.core import read_batches

    return read_batches(str(path))[1]


def test_two_thousand_columns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    table = pa.table({f"c{i}": rng.integers(0, 5, 50) for i in range(2000)})
    pq.write_table(table, tmp_path / "wide.parquet")
    stats = stats_core.generate_statistics(tmp_path / "wide.parquet")
    assert len(stats.features) == 2000 and stats.num_examples == 50
    assert run_cli(capsys, tmp_path / "wide.parquet")[0] == 0


def test_schema_file_that_does_not_parse_and_schema_types_that_disagree(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,x\n2,y\n")
    bad = tmp_path / "schema.pbtxt"
    bad.write_text("feature { name: 'a' type: INT\n")
    code, _, err = run_cli(capsys, data, "--schema", bad)
    assert code == 2 and "schema.pbtxt: not a tensorflow_metadata Schema" in err
    wrong = tmp_path / "wrong.pbtxt"
    wrong.write_text('feature { name: "a" type: BYTES } feature { name: "b" type: FLOAT }')
    code, out, _ = run_cli(capsys, data, "--schema", wrong)
    assert code == 1
    assert "a: UNEXPECTED_DATA_TYPE: Expected data of type: BYTES but got INT" in out
    assert "b: UNEXPECTED_DATA_TYPE: Expected data of type: FLOAT but got STRING" in out


def test_nested_column_is_rejected_with_its_name():
    table = pa.table({"ok": [1, 2], "tags": [[1, 2], [3]]})
    with pytest.raises(stats_core.StatisticsError, match="column 'tags' has type list<item: int64>"):
        stats_core.generate_statistics(table)


def test_cli_writes_reports_and_flags_a_corrupted_serving_file(tmp_path, capsys, penguins_csv):
    lines = penguins_csv.read_text().splitlines()
    header = lines[0].split(",")
    corrupted = [",".join(h for h in header if h != "sex")]
    for line in lines[1:120]:
        cells = dict(zip(header, line.split(","), strict=True))
        cells["species"] = "Unknown" if cells["species"] == "Gentoo" else cells["species"]
        corrupted.append(",".join(cells[h] for h in header if h != "sex"))
    serving = tmp_path / "serving.csv"
    serving.write_text("\n".join(corrupted) + "\n")
    code, out, _ = run_cli(capsys, penguins_csv, "--serving", serving, "--output", tmp_path / "out")
    assert code == 1
    assert "species: COMPARATOR_L_INFTY_HIGH" in out  # the unseen value shifts the category shares
    assert "sex: COMPARATOR_CONTROL_DATA_MISSING" in out  # the column is gone from serving
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<svg" in html and "COMPARATOR_L_INFTY_HIGH" in html
    assert (tmp_path / "out" / "anomalies.pbtxt").exists()


def test_parity_with_tfdv_when_the_peer_venv_exists(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    peer = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kfpc-peers" / "tfdv" / "bin" / "python"
    if not peer.exists():
        pytest.skip(f"TFDV peer venv not built ({peer} missing; run ../shared/peers/tfdv/setup.sh)")
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "parity_tfdv.py"
    done = subprocess.run([sys.executable, str(script), "--quick", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
