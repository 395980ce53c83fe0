"""``kfpc validate DATA [--schema FILE] [--baseline DATA] [--serving DATA]``: validation outside a pipeline.

The same cores as the components: statistics of each file, the schema (given, or inferred from the
baseline, or from DATA itself), then TFDV-style anomalies printed one per line, errors first, then
warnings (prefixed ``warning:``). Drift (``--baseline``) and skew (``--serving``) use the sample-size-aware
tests of :mod:`kfpc.components.validate.shift` unless ``--drift-threshold`` asks for TFDV's fixed
thresholds. Exit code 0 when there is no error (warnings allowed), 1 when there are errors, 2 when an
input cannot be read.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _statistics(path: str, delimiter: str):
    from kfpc.components import artifacts, types
    from kfpc.components.ingest.core import read_batches
    from kfpc.components.statistics import core as stats_core

    splits = artifacts.dataset_splits(path)
    if types.TRAIN in splits:
        # a Dataset folder: validate its eval split when it has one, else train
        path = str(artifacts.split_file(path, types.EVAL if types.EVAL in splits else types.TRAIN))
    _, batches = read_batches(path, delimiter=delimiter)
    return stats_core.generate_statistics(batches, name=os.path.basename(path))


def main(args) -> int:
    """Run the validation for parsed ``args``; return the exit code."""
    from kfpc.components import artifacts
    from kfpc.components.schema import core as schema_core
    from kfpc.components.validate import core, report

    try:
        current = _statistics(args.data, args.delimiter)
        baseline = _statistics(args.baseline, args.delimiter) if args.baseline else None
        serving = _statistics(args.serving, args.delimiter) if args.serving else None
        # fixed TFDV thresholds only when asked for: the default is the sample-size-aware test
        threshold = {"infinity_norm": args.drift_threshold, "jensen_shannon_divergence": args.drift_threshold}
        if args.schema:
            schema = artifacts.read_schema(args.schema)
        else:
            schema = schema_core.infer_schema(
                baseline if baseline is not None else current,
                drift_comparators=threshold if baseline is not None and args.drift_threshold > 0 else None,
                skew_comparators=threshold if serving is not None and args.drift_threshold > 0 else None)
        if serving is not None:
            # skew: the data is the training side, serving is compared with it and validated too
            anomalies = core.validate(current, schema, serving=serving)
            serving_anomalies = core.validate(serving, schema, environment=args.serving_environment)
            for name, info in serving_anomalies.anomaly_info.items():
                anomalies.anomaly_info[f"serving:{name}"].CopyFrom(info)
        else:
            anomalies = core.validate(current, schema, previous=baseline)
    except ValueError as err:
        print(f"kfpc validate: {err}", file=sys.stderr)
        return 2
    lines = core.anomaly_lines(anomalies)
    warnings = core.anomaly_lines(anomalies, warnings=True)
    for line in lines:
        print(line)
    for line in warnings:
        print(f"warning: {line}")
    print(f"{len(lines)} anomal{'y' if len(lines) == 1 else 'ies'}"
          + (f" and {len(warnings)} warning{'' if len(warnings) == 1 else 's'}" if warnings else "")
          + f" in {args.data}", file=sys.stderr)
    if args.output:
        shown = {"data": current}
        if baseline is not None:
            shown["baseline"] = baseline
        if serving is not None:
            shown["serving"] = serving
        reference = baseline if baseline is not None else serving
        distances = core.compare(current, reference) if reference is not None else {}
        out = Path(args.output)
        artifacts.write_anomalies(anomalies, out)
        report.write_text(out / "report.md", report.render_markdown(anomalies, shown, distances))
        report.write_text(out / "report.html", report.render_html(anomalies, shown, distances))
    return 1 if lines else 0


def register(subparsers) -> None:
    """Add the ``validate`` subcommand to the kfpc CLI."""
    parser = subparsers.add_parser("validate", help="validate a data file against a schema (TFDV anomalies)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("data", help="CSV or Parquet file, or a Dataset folder")
    parser.add_argument("--schema", help="schema.pbtxt (default: inferred from --baseline, else from DATA)")
    parser.add_argument("--baseline", help="previous span (CSV/Parquet/Dataset) for drift")
    parser.add_argument("--serving", help="serving data (CSV/Parquet/Dataset) for training/serving skew")
    parser.add_argument("--serving-environment", default=None, help="schema environment of the serving data")
    parser.add_argument("--drift-threshold", type=float, default=0.0,
                        help="fixed L-inf / JSD threshold added to an inferred schema instead of the default "
                             "sample-size-aware drift/skew test (default 0: the test)")
    parser.add_argument("--delimiter", default=",", help="CSV delimiter")
    parser.add_argument("--output", help="folder to write anomalies.pbtxt, report.md and report.html")
    parser.set_defaults(func=main)


if __name__ == "__main__":
    import argparse

    cli = argparse.ArgumentParser(prog="kfpc")
    register(cli.add_subparsers(dest="command", required=True))
    parsed = cli.parse_args()
    sys.exit(parsed.func(parsed))
