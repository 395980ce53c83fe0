"""Reports a person reads: Markdown (shown in the KFP UI) and a self-contained HTML page.

The HTML holds the feature table, one small inline-SVG histogram per feature and dataset side by side
(equal-width histogram for numeric features, top values for categorical ones) and every anomaly with its
reasons. No JavaScript, no external assets, no plotting library: it renders offline in the KFP UI.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from kfpc.components.schema.core import feature_name

Reason = anomalies_pb2.AnomalyInfo
FeatureType = statistics_pb2.FeatureNameStatistics
_COLORS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2"]
_TOP_BARS = 12


def _common(feature):
    which = feature.WhichOneof("stats")
    return getattr(feature, which).common_stats if which else statistics_pb2.CommonStatistics()


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _datasets(statistics: dict) -> dict[str, statistics_pb2.DatasetFeatureStatistics]:
    out = {}
    for label, stats in statistics.items():
        if stats is None:
            continue
        if isinstance(stats, statistics_pb2.DatasetFeatureStatisticsList):
            stats = stats.datasets[0]
        out[label] = stats
    return out


def _summary(feature) -> str:
    common = _common(feature)
    if feature.WhichOneof("stats") == "num_stats":
        n = feature.num_stats
        if not common.num_non_missing:
            return "no values"
        return f"mean {_fmt(n.mean)} · std {_fmt(n.std_dev)} · min {_fmt(n.min)} · median {_fmt(n.median)} · max {_fmt(n.max)}"
    s = feature.string_stats
    top = ", ".join(f"{_cut(v.value)} ({_fmt(v.frequency)})" for v in s.top_values[:3])
    return f"{s.unique} unique · top: {top}"


def _cut(value: str, limit: int = 60) -> str:
    """A data value shown in a report: at most ``limit`` characters (a 10 MB cell stays a short excerpt)."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _rows(statistics: dict) -> list[tuple]:
    datasets = _datasets(statistics)
    names: list[str] = []
    for stats in datasets.values():
        for feature in stats.features:
            name = feature_name(feature)
            if name not in names:
                names.append(name)
    rows = []
    for name in names:
        per = {}
        for label, stats in datasets.items():
            per[label] = next((f for f in stats.features if feature_name(f) == name), None)
        rows.append((name, per))
    return rows


def _counts(anomalies: anomalies_pb2.Anomalies) -> tuple[int, int]:
    """(features with errors, features with warnings only); the dataset-level anomaly counts as a feature."""
    infos = list(anomalies.anomaly_info.values())
    if anomalies.dataset_anomaly_info.reason:
        infos.append(anomalies.dataset_anomaly_info)
    warnings = sum(1 for info in infos if info.severity == Reason.WARNING)
    return len(infos) - warnings, warnings


def _verdict(anomalies: anomalies_pb2.Anomalies) -> str:
    errors, warnings = _counts(anomalies)
    text = "No anomalies" if not errors else f"{errors} anomal{'y' if errors == 1 else 'ies'}"
    return text + (f", {warnings} warning{'' if warnings == 1 else 's'}" if warnings else "")


def _severity(info) -> str:
    return "warning" if info.severity == Reason.WARNING else "error"


def _missing(feature, num_examples: int) -> str:
    if feature is None:
        return "absent"
    common = _common(feature)
    return f"{100.0 * common.num_missing / num_examples:.1f}%" if num_examples else ""


def render_markdown(anomalies: anomalies_pb2.Anomalies, statistics: dict, distances: dict | None = None,
                    title: str = "Data validation") -> str:
    """Markdown report: verdict, anomalies table, feature table (with PSI/JSD/L-inf when given).

    Args:
        anomalies: the validation result.
        statistics: label -> statistics (the validated data first, then baselines).
        distances: feature -> {"psi", "jsd", "linf"} (from :func:`kfpc.components.validate.core.compare`).
        title: heading.
    Returns:
        The Markdown text.
    """
    datasets = _datasets(statistics)
    labels = list(datasets)
    count = sum(_counts(anomalies))
    lines = [f"# {_md(title)}", ""]
    lines.append(f"**{_verdict(anomalies)}** · "
                 + " · ".join(f"{_md(label)}: {datasets[label].num_examples} examples" for label in labels))
    lines.append("")
    if count:
        lines += ["| feature | severity | reason | description |", "|---|---|---|---|"]
        for name in sorted(anomalies.anomaly_info):
            info = anomalies.anomaly_info[name]
            reasons = ", ".join(f"`{Reason.Type.Name(r.type)}`" for r in info.reason)
            lines.append(f"| {_md_name(name)} | {_severity(info)} | {reasons} | {_md(info.description)} |")
        if anomalies.dataset_anomaly_info.reason:
            info = anomalies.dataset_anomaly_info
            reasons = ", ".join(f"`{Reason.Type.Name(r.type)}`" for r in info.reason)
            lines.append(f"| (dataset) | {_severity(info)} | {reasons} | {_md(info.description)} |")
        lines.append("")
    header = ["feature", "type"] + [f"missing ({label})" for label in labels] + ["summary"]
    if distances:
        header += ["PSI", "JSD", "L∞"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, per in _rows(statistics):
        first = next((f for f in per.values() if f is not None), None)
        cells = [_md_name(name), FeatureType.Type.Name(first.type) if first is not None else ""]
        cells += [_missing(per[label], datasets[label].num_examples) for label in labels]
        cells.append(_md(_summary(first)) if first is not None else "")
        if distances:
            d = distances.get(name, {})
            cells += [_fmt(d.get("psi")), _fmt(d.get("jsd")), _fmt(d.get("linf"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(text: str, limit: int = 2000) -> str:
    """Text for a Markdown table cell: HTML escaped (the KFP UI renders Markdown as HTML, so a value such as
    ``<script>`` from the data must stay text), pipes escaped, one line, at most ``limit`` characters."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _md_name(name: str) -> str:
    """A feature name as inline code, or as escaped text when a backtick or markup would break the span."""
    if "`" in name or any(ch in name for ch in "<>&|\n\r") or len(name) > 200:
        return _md(name, 200)
    return f"`{name}`"


def _svg_numeric(per: dict, width: int = 260, height: int = 70) -> str:
    histograms = {}
    for label, feature in per.items():
        if feature is None or feature.WhichOneof("stats") != "num_stats":
            continue
        for h in feature.num_stats.histograms:
            if h.type == statistics_pb2.Histogram.STANDARD and h.buckets:
                buckets = [b for b in h.buckets if math.isfinite(b.low_value) and math.isfinite(b.high_value)]
                total = sum(b.sample_count for b in h.buckets) or 1.0
                histograms[label] = [(b.low_value, b.high_value, b.sample_count / total) for b in buckets]
    if not histograms:
        return ""
    low = min(b[0] for bs in histograms.values() for b in bs)
    high = max(b[1] for bs in histograms.values() for b in bs)
    span = (high - low) or 1.0
    top = max((b[2] for bs in histograms.values() for b in bs), default=1.0) or 1.0
    parts = [f'<svg width="{width}" height="{height + 14}" role="img">']
    series = len(histograms)
    for i, (label, buckets) in enumerate(histograms.items()):
        color = _COLORS[i % len(_COLORS)]
        for b_low, b_high, share in buckets:
            x0 = (b_low - low) / span * width
            w = max(1.0, (b_high - b_low) / span * width / series)
            x = x0 + i * w
            h = share / top * height
            parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{max(w - 0.5, 0.5):.1f}" '
                         f'height="{h:.1f}" fill="{color}" fill-opacity="0.8"><title>{html.escape(label)}: '
                         f'[{_fmt(b_low)}, {_fmt(b_high)}] {share:.1%}</title></rect>')
    parts.append(f'<text x="0" y="{height + 12}" font-size="10">{html.escape(_fmt(low))}</text>')
    parts.append(f'<text x="{width}" y="{height + 12}" font-size="10" text-anchor="end">'
                 f'{html.escape(_fmt(high))}</text></svg>')
    return "".join(parts)


def _svg_categorical(per: dict, width: int = 260) -> str:
    shares = {}
    for label, feature in per.items():
        if feature is None or feature.WhichOneof("stats") != "string_stats":
            continue
        total = _common(feature).num_non_missing or 1
        shares[label] = {b.label: b.sample_count / total for b in feature.string_stats.rank_histogram.buckets}
    if not shares:
        return ""
    first = next(iter(shares.values()))
    values = list(first)[:_TOP_BARS]
    for other in shares.values():
        for value in other:
            if len(values) >= _TOP_BARS:
                break
            if value not in values:
                values.append(value)
    bar = 10
    row = bar * len(shares) + 4
    height = row * len(values)
    top = max((s.get(v, 0.0) for s in shares.values() for v in values), default=1.0) or 1.0
    label_width = 90
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    for r, value in enumerate(values):
        y = r * row
        parts.append(f'<text x="0" y="{y + bar}" font-size="10">{html.escape(value[:14])}</text>')
        for i, (label, share) in enumerate(shares.items()):
            w = share.get(value, 0.0) / top * (width - label_width)
            parts.append(f'<rect x="{label_width}" y="{y + i * bar}" width="{w:.1f}" height="{bar - 1}" '
                         f'fill="{_COLORS[i % len(_COLORS)]}"><title>{html.escape(label)}: {html.escape(_cut(value))} '
                         f'{share.get(value, 0.0):.1%}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(anomalies: anomalies_pb2.Anomalies, statistics: dict, distances: dict | None = None,
                title: str = "Data validation") -> str:
    """Self-contained HTML report (same content as the Markdown plus histograms side by side).

    Args:
        anomalies: the validation result.
        statistics: label -> statistics (validated data first).
        distances: feature -> {"psi", "jsd", "linf"}.
        title: page title.
    Returns:
        The HTML text.
    """
    datasets = _datasets(statistics)
    labels = list(datasets)
    esc = html.escape
    errors, warnings = _counts(anomalies)
    count = errors + warnings
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
           "body{font-family:sans-serif;font-size:13px;margin:16px}table{border-collapse:collapse}"
           "td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}"
           "th{background:#f4f4f4}.bad{color:#b00020}.ok{color:#1b5e20}.warn{color:#8a5a00}code{font-size:12px}"
           ".legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}</style></head><body>",
           f"<h1>{esc(title)}</h1>"]
    out.append(f"<p class='{'ok' if not errors else 'bad'}'><b>{esc(_verdict(anomalies))}</b> · "
               + " · ".join(f"{esc(label)}: {datasets[label].num_examples} examples" for label in labels) + "</p>")
    out.append("<p class='legend'>" + "".join(
        f"<span style='background:{_COLORS[i % len(_COLORS)]}'></span>{esc(label)}" for i, label in enumerate(labels))
        + "</p>")
    if count:
        out.append("<h2>Anomalies</h2><table><tr><th>feature</th><th>severity</th><th>reasons</th>"
                   "<th>description</th></tr>")
        for name in sorted(anomalies.anomaly_info):
            info = anomalies.anomaly_info[name]
            reasons = "<br>".join(f"<code>{Reason.Type.Name(r.type)}</code> {esc(r.short_description)}"
                                  for r in info.reason)
            details = "<br>".join(esc(r.description) for r in info.reason)
            css = "warn" if info.severity == Reason.WARNING else "bad"
            out.append(f"<tr><td><code>{esc(name)}</code></td><td class='{css}'>{_severity(info)}</td>"
                       f"<td>{reasons}</td><td>{details}</td></tr>")
        if anomalies.dataset_anomaly_info.reason:
            info = anomalies.dataset_anomaly_info
            out.append(f"<tr><td>(dataset)</td><td class='bad'>{_severity(info)}</td>"
                       f"<td>{esc(info.short_description)}</td><td>{esc(info.description)}</td></tr>")
        out.append("</table>")
    out.append("<h2>Features</h2><table><tr><th>feature</th><th>type</th>"
               + "".join(f"<th>missing ({esc(label)})</th>" for label in labels)
               + "<th>summary</th>" + ("<th>PSI</th><th>JSD</th><th>L∞</th>" if distances else "")
               + "<th>distribution</th></tr>")
    for name, per in _rows(statistics):
        first = next((f for f in per.values() if f is not None), None)
        flagged = "" if name not in anomalies.anomaly_info else (
            " class='warn'" if anomalies.anomaly_info[name].severity == Reason.WARNING else " class='bad'")
        cells = [f"<td{flagged}><code>{esc(name)}</code></td>",
                 f"<td>{FeatureType.Type.Name(first.type) if first is not None else ''}</td>"]
        cells += [f"<td>{_missing(per[label], datasets[label].num_examples)}</td>" for label in labels]
        cells.append(f"<td>{esc(_summary(first)) if first is not None else ''}</td>")
        if distances:
            d = distances.get(name, {})
            cells += [f"<td>{_fmt(d.get(k))}</td>" for k in ("psi", "jsd", "linf")]
        numeric = first is not None and first.WhichOneof("stats") == "num_stats"
        cells.append(f"<td>{_svg_numeric(per) if numeric else _svg_categorical(per)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a report file atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.partial")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)
