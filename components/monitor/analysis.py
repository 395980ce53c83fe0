"""Monitoring a window of served traffic: payload logs -> statistics -> skew and drift -> verdict.

The payload log is the model server's (``--payload_log``): one JSON object per request with ``time`` and
``inputs`` (one list of values per feature, ``null`` / ``""`` for a missing value). The window's rows go
through the same statistics engine as training data (``components/statistics``) and the same validation
engine (``components/validate``): skew against the training statistics, drift against the window before,
with its sample-size-aware shift tests and anomaly types.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa

#: reason types of the validation engine that mean "the distribution moved"
SHIFT_REASONS = ("COMPARATOR_L_INFTY_HIGH", "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH",
                 "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")


class MonitorError(ValueError):
    """Bad payload log or window; the message names the file, line and value."""


def parse_time(text: str, what: str) -> dt.datetime:
    """An ISO-8601 time (``Z`` allowed; no zone = UTC)."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise MonitorError(f"{what}: {text!r} is not an ISO-8601 time such as 2026-12-07T03:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _files(uri: str) -> list[tuple[str, str]]:
    """``(name, local path)`` of the payload files under ``uri`` (a .jsonl file or a folder of them)."""
    if uri.startswith("s3://"):
        return _s3_files(uri)
    from kfpc.components._fs import local_path

    path = Path(local_path(uri))
    if path.is_file():
        return [(uri, str(path))]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".log"))
        return [(str(p), str(p)) for p in found]
    raise MonitorError(f"payload log {uri}: no such file or folder"
                       + (" (gs:// is read through the /gcs FUSE mount)" if uri.startswith("gs://") else ""))


def _s3_files(uri: str) -> list[tuple[str, str]]:
    import tempfile

    try:
        import boto3
    except ImportError:
        raise MonitorError(f"payload log {uri}: s3:// needs boto3 (pip install boto3)") from None
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    client = boto3.client("s3")
    scratch = tempfile.mkdtemp(prefix="kfpc-payload-")
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith((".jsonl", ".json", ".log")):
                target = os.path.join(scratch, str(len(out)))
                client.download_file(bucket, key, target)
                out.append((f"s3://{bucket}/{key}", target))
    if not out:
        raise MonitorError(f"payload log {uri}: no .jsonl objects under it")
    return out


def read_payload(uri: str, start: dt.datetime | None, end: dt.datetime | None, features: list[dict]) -> pa.Table:
    """The rows of the requests logged in ``[start, end)``, one column per card feature.

    Args:
        uri: a payload log file, or a folder of them (local, ``gs://`` through its FUSE mount, ``s3://``).
        start / end: the window (None: open).
        features: the card's features (``name``, ``dtype``); string features stay strings, others float64.
    Returns:
        A pyarrow Table (possibly empty).
    Raises:
        MonitorError: a malformed line (file and line number), a record without ``time``/``inputs``, a
            feature missing from a record, or columns of unequal length.
    """
    columns: dict[str, list] = {f["name"]: [] for f in features}
    strings = {f["name"] for f in features if f.get("dtype") == "string"}
    for name, path in _files(uri):
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines):  # the last line of a file the server is still writing
                    continue
                raise MonitorError(f"{name} line {number}: not JSON ({err.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("inputs"), dict) or "time" not in record:
                raise MonitorError(f"{name} line {number}: not a kfpc payload record (needs 'time' and 'inputs')")
            when = parse_time(str(record["time"]), f"{name} line {number} field 'time'")
            if (start is not None and when < start) or (end is not None and when >= end):
                continue
            inputs = record["inputs"]
            lengths = set()
            for feature in columns:
                values = inputs.get(feature)
                if not isinstance(values, list):
                    raise MonitorError(f"{name} line {number}: feature {feature!r} is missing from 'inputs'")
                lengths.add(len(values))
            if len(lengths) > 1:
                raise MonitorError(f"{name} line {number}: the features have different row counts {sorted(lengths)}")
            for feature, values in ((f, inputs[f]) for f in columns):
                if feature in strings:
                    columns[feature].extend(None if v in (None, "") else str(v) for v in values)
                else:
                    try:
                        columns[feature].extend(None if v is None else float(v) for v in values)
                    except (TypeError, ValueError):
                        bad = next(v for v in values if v is not None and not _is_number(v))
                        raise MonitorError(f"{name} line {number}: feature {feature!r} value {bad!r} is not a "
                                           f"number") from None
    return pa.table({name: pa.array(values, type=pa.string() if name in strings else pa.float64())
                     for name, values in columns.items()})


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _typed_like(table: pa.Table, training) -> pa.Table:
    """Integral float columns become int64 where training saw integers (the server sends floats)."""
    import pyarrow.compute as pc
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from kfpc.components.schema.core import feature_name

    ints = {feature_name(f) for f in training.features if f.type == statistics_pb2.FeatureNameStatistics.INT}
    for i, name in enumerate(table.column_names):
        column = table.column(name)
        if name in ints and pa.types.is_floating(column.type):
            present = pc.drop_null(column)
            if len(present) == 0 or pc.all(pc.equal(present, pc.floor(present))).as_py():
                table = table.set_column(i, name, pc.cast(column, pa.int64()))
    return table


@dataclasses.dataclass
class WindowResult:
    """What :func:`analyze` found."""

    rows: int
    previous_rows: int
    skew_features: dict  # feature -> list of "REASON: description"
    drift_features: dict
    anomaly_lines: list
    drift_confirmed: bool
    reason: str
    distances: dict

    def metrics(self) -> dict:
        """Numbers for a KFP Metrics artifact."""
        return {"rows": self.rows, "previous_rows": self.previous_rows,
                "skewed_features": len(self.skew_features), "drifted_features": len(self.drift_features),
                "drift_confirmed": int(self.drift_confirmed)}


def _shifted(anomalies) -> dict:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    out = {}
    for name, info in sorted(anomalies.anomaly_info.items()):
        kept = [f"{anomalies_pb2.AnomalyInfo.Type.Name(r.type)}: {r.description}" for r in info.reason
                if anomalies_pb2.AnomalyInfo.Type.Name(r.type) in SHIFT_REASONS]
        if kept and info.severity == anomalies_pb2.AnomalyInfo.ERROR:
            out[name] = kept
    return out


def serving_schema(schema, label: str | None):
    """The schema as the served data sees it: the label (never sent to the model) removed."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    if label:
        kept = [f for f in out.feature if f.name != label]
        del out.feature[:]
        out.feature.extend(kept)
    return out


def analyze(window, training, schema, previous=None, *, min_rows: int = 200,
            min_drifted_features: int = 1) -> tuple[WindowResult, object, object]:
    """Skew of a window vs training and drift vs the previous window.

    Args:
        window: statistics of the window (``DatasetFeatureStatistics``).
        training: the training statistics.
        schema: the schema (label removed: :func:`serving_schema`).
        previous: statistics of the previous window, or None.
        min_rows: rows the window needs before drift can be confirmed.
        min_drifted_features: features skewed vs training needed to confirm drift.
    Returns:
        ``(result, skew_anomalies, drift_anomalies or None)``.
    """
    from kfpc.components.validate import core as validate

    skew = validate.validate(window, schema, reference=training, name="serving", reference_name="training")
    drift = validate.validate(window, schema, previous=previous, name="serving") if previous is not None else None
    skewed = _shifted(skew)
    drifted = _shifted(drift) if drift is not None else {}
    rows = int(window.num_examples)
    lines = validate.anomaly_lines(skew) + ([f"(vs previous window) {line}" for line in validate.anomaly_lines(drift)]
                                           if drift is not None else [])
    if rows < min_rows:
        confirmed, reason = False, f"{rows} rows in the window, fewer than min_rows={min_rows}: no verdict"
    elif len(skewed) >= min_drifted_features:
        confirmed = True
        reason = (f"{len(skewed)} feature(s) shifted between served traffic ({rows} rows) and the training data: "
                  + "; ".join(f"{name} ({', '.join(r.split(':')[0] for r in reasons)})"
                              for name, reasons in skewed.items()))
        if drifted:
            reason += f"; vs the previous window: {', '.join(drifted)}"
    else:
        confirmed = False
        reason = (f"{len(skewed)} feature(s) shifted vs training (need {min_drifted_features}) in {rows} rows"
                  + (f"; vs the previous window: {', '.join(drifted)}" if drifted else ""))
    distances = validate.compare(window, training)
    result = WindowResult(rows=rows, previous_rows=int(previous.num_examples) if previous is not None else 0,
                          skew_features=skewed, drift_features=drifted, anomaly_lines=lines,
                          drift_confirmed=confirmed, reason=reason, distances=distances)
    return result, skew, drift


def render_markdown(result: WindowResult, window_text: str) -> str:
    """The report: verdict, reason, shifted features with the engine's descriptions, all anomalies."""
    lines = [f"# Model monitoring: {window_text}", "",
             f"**Verdict:** {'drift confirmed' if result.drift_confirmed else 'no confirmed drift'}", "",
             f"**Why:** {result.reason}", "",
             f"Rows in the window: {result.rows}; in the previous window: {result.previous_rows}.", ""]
    for title, found in (("Shifted vs training (skew)", result.skew_features),
                         ("Shifted vs the previous window (drift)", result.drift_features)):
        lines += [f"## {title}", ""]
        if not found:
            lines += ["none", ""]
        for name, reasons in found.items():
            lines += [f"- **{_md(name)}**"] + [f"  - {_md(r)}" for r in reasons]
        lines.append("")
    if result.distances:
        lines += ["## Distances to training", "", "| feature | measure | value |", "|---|---|---|"]
        for name, measures in sorted(result.distances.items()):
            for measure, value in measures.items():
                lines.append(f"| {_md(name)} | {measure} | {'' if value is None else f'{value:.4g}'} |")
        lines.append("")
    lines += ["## All anomalies", ""] + ([f"- {_md(line)}" for line in result.anomaly_lines] or ["none"])
    return "\n".join(lines) + "\n"


def render_html(markdown_text: str) -> str:
    """The same report as a minimal HTML page (escaped, pre-formatted)."""
    import html

    return ("<!doctype html><html><head><meta charset='utf-8'><title>kfpc monitoring</title></head><body>"
            f"<pre style='white-space:pre-wrap;font-family:sans-serif'>{html.escape(markdown_text)}</pre></body></html>")


def _md(text: str, limit: int = 600) -> str:
    text = str(text).replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."
