"""The self-contained HTML report of an evaluation: tables and plots (PNG embedded as data URIs).

Plots need matplotlib (Agg backend); without it the report has the tables only and says so.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.pass{color:#0a7d22;font-weight:600}
.fail{color:#b00020;font-weight:600}.skip{color:#777}.banner{font-size:1.4em;padding:10px 14px;border-radius:6px}
.ok{background:#e5f6e8}.ko{background:#fde7ea}img{max-width:100%;margin:6px 0}
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "—"
        if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _interval(values: list[float] | None) -> str:
    return f"[{_fmt(values[0])}, {_fmt(values[1])}]" if values else ""


def _headline(evaluation: dict[str, Any]) -> str:
    """The metric of the slice table and bars (older evaluation.json files: accuracy or RMSE)."""
    return evaluation.get("headline_metric") or ("rmse" if evaluation["task"] == "regression" else "accuracy")


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _plots(evaluation: dict[str, Any]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["<p>(matplotlib is not installed: plots omitted)</p>"]
    out = []
    colors = {"candidate": "#1f77b4", "baseline": "#ff7f0e"}
    if evaluation["task"] != "regression":
        curves = evaluation.get("curves", {})
        figure, axes = plt.subplots(1, 3, figsize=(15, 4.4))
        for role, curve in curves.items():
            axes[0].plot(curve["fpr"], curve["tpr"], label=role, color=colors[role])
            axes[1].plot(curve["recall"], curve["precision"], label=role, color=colors[role])
        kind = next(iter(curves.values()), {}).get("kind", "")
        axes[0].plot([0, 1], [0, 1], ":", color="#999")
        axes[0].set(title=f"ROC ({kind})", xlabel="false positive rate", ylabel="true positive rate")
        axes[1].set(title=f"Precision-recall ({kind})", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
        for role, calibration in evaluation.get("calibration", {}).items():
            points = [(p, o) for p, o in zip(calibration["mean_probability"], calibration["observed_rate"], strict=True)
                      if p is not None and o is not None]
            if points:
                axes[2].plot(*zip(*points, strict=True), "o-", label=role, color=colors[role])
        axes[2].plot([0, 1], [0, 1], ":", color="#999")
        calibration_kind = next(iter(evaluation.get("calibration", {}).values()), {}).get("kind", "")
        axes[2].set(title=f"Calibration ({calibration_kind})", xlabel="predicted probability", ylabel="observed rate")
        for axis in axes:
            axis.legend(loc="best")
            axis.grid(alpha=0.3)
        out.append(_png(figure))
    else:
        sample = evaluation.get("residual_sample", {})
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.4))
        for role, data in sample.items():
            axes[0].hist(data["residual"], bins=50, alpha=0.5, label=role, color=colors[role])
            axes[1].scatter(data["label"], data["prediction"], s=4, alpha=0.4, label=role, color=colors[role])
        axes[0].set(title="Residuals (label - prediction), sample", xlabel="residual", ylabel="rows")
        axes[1].set(title="Prediction vs label, sample", xlabel="label", ylabel="prediction")
        for axis in axes:
            axis.legend(loc="best")
            axis.grid(alpha=0.3)
        out.append(_png(figure))
    # Per-slice bars of the headline metric with intervals, one panel per slicing spec.
    headline = _headline(evaluation)
    specs: dict[str, list[dict]] = {}
    for entry in evaluation["slices"]:
        if entry["spec_index"] and not entry["too_small"]:
            specs.setdefault(entry["spec"], []).append(entry)
    for spec, entries in specs.items():
        entries = entries[:40]
        figure, axis = plt.subplots(figsize=(max(6, 0.5 * len(entries) + 3), 4))
        width = 0.4
        for offset, role in ((-width / 2, "candidate"), (width / 2, "baseline")):
            values = [e[role].get(headline) if e[role] else None for e in entries]
            if all(v is None for v in values):
                continue
            errors = [[0, 0]] * len(entries)
            for i, e in enumerate(entries):
                interval = e.get("intervals", {}).get(headline, {}).get(role)
                if interval and values[i] is not None:
                    errors[i] = [max(values[i] - interval[0], 0), max(interval[1] - values[i], 0)]
            positions = [i + offset for i in range(len(entries))]
            axis.bar(positions, [v if v is not None else 0 for v in values], width, label=role, color=colors[role],
                     yerr=list(zip(*errors, strict=True)), capsize=3)
        axis.set_xticks(range(len(entries)), [e["slice"] for e in entries], rotation=30, ha="right")
        axis.set(title=f"{headline} by {spec} (bars: 95% bootstrap interval)", ylabel=headline)
        axis.legend(loc="best")
        axis.grid(alpha=0.3, axis="y")
        out.append(_png(figure))
    return out


def render(evaluation: dict[str, Any], blessing: dict[str, Any]) -> str:
    """The HTML report of an evaluation.

    Args:
        evaluation: the content of ``evaluation.json``.
        blessing: the content of ``blessing.json``.
    Returns:
        A complete HTML document.
    """
    blessed = blessing["blessed"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>kfpc evaluation</title><style>{_STYLE}"
             "</style></head><body>",
             "<h1>Model evaluation</h1>",
             f"<div class='banner {'ok' if blessed else 'ko'}'>{'BLESSED' if blessed else 'NOT BLESSED'}</div>",
             f"<p>task <b>{_fmt(evaluation['task'])}</b>, label <b>{_fmt(evaluation['label'])}</b>, "
             f"{_fmt(evaluation['example_count'])} rows of split {_fmt(evaluation['split'])} "
             f"({_fmt(evaluation['rows_without_label'])} without a label skipped).<br>"
             f"candidate: <code>{_fmt(evaluation['candidate_model'])}</code><br>"
             f"baseline: <code>{_fmt(evaluation['baseline_model'] or 'none (first run: value thresholds only)')}"
             "</code></p>"]

    skill = evaluation.get("skill_metric") or {}
    if skill:
        parts.append(f"<p>Skill metric (<code>auto</code>): <b>{_fmt(skill.get('metric'))}</b> — "
                     f"{_fmt(skill.get('reason'))}. Trivial predictor: {_fmt(skill.get('trivial_predictor'))} "
                     "(its metrics on the same rows are in the column <i>trivial</i>).</p>")
    parts.append("<h2>Thresholds</h2><p><i>compared</i> is what was judged against <i>bound</i>, in the metric's "
                 "units: the value or an end of its bootstrap interval; for a skill threshold the trivial value plus "
                 "the end of the paired interval of the skill, for a change threshold the baseline plus the end of "
                 "the paired interval of the difference (Δ).</p><table><tr><th class=l>metric</th><th class=l>slice</th>"
                 "<th>kind</th><th>value</th><th>interval</th><th>trivial</th><th>baseline</th><th>compared</th>"
                 "<th>bound</th><th>verdict</th><th class=l>reason</th></tr>")
    for v in blessing["verdicts"]:
        verdict = "skipped" if v["passed"] is None else ("pass" if v["passed"] else "FAIL")
        css = "skip" if v["passed"] is None else ("pass" if v["passed"] else "fail")
        kind = v.get("kind")
        interval = ("Δ " if kind == "change" and v.get("interval") else "") + _interval(v.get("interval"))
        parts.append(f"<tr><td class=l>{_fmt(v['metric'])}</td><td class=l>{_fmt(v['slice'])}</td>"
                     f"<td>{_fmt(kind)}</td><td>{_fmt(v.get('value'))}</td><td>{interval}</td>"
                     f"<td>{_fmt(v.get('trivial'))}</td><td>{_fmt(v.get('baseline'))}</td>"
                     f"<td>{_fmt(v.get('compared'))}</td><td>{_fmt(v.get('bound'))}</td><td class={css}>{verdict}</td>"
                     f"<td class=l>{_fmt(v['reason'])}</td></tr>")
    if not blessing["verdicts"]:
        parts.append("<tr><td colspan=11 class=l>no thresholds configured: blessed by default</td></tr>")
    parts.append("</table>")

    candidate = evaluation["metrics"]["candidate"]
    baseline = evaluation["metrics"]["baseline"] or {}
    trivial = evaluation["metrics"].get("trivial") or {}
    intervals = evaluation.get("intervals", {})
    parts.append("<h2>Overall metrics</h2><table><tr><th class=l>metric</th><th>candidate</th><th>interval</th>"
                 "<th>trivial</th><th>skill interval</th><th>baseline</th><th>interval</th><th>difference</th>"
                 "<th>interval</th></tr>")
    for name, value in candidate.items():
        base = baseline.get(name)
        diff = value - base if isinstance(value, float) and isinstance(base, float) else None
        ci = intervals.get(name, {})
        parts.append(f"<tr><td class=l>{_fmt(name)}</td><td>{_fmt(value)}</td><td>{_interval(ci.get('candidate'))}</td>"
                     f"<td>{_fmt(trivial.get(name))}</td><td>{_interval(ci.get('skill'))}</td>"
                     f"<td>{_fmt(base)}</td><td>{_interval(ci.get('baseline'))}</td><td>{_fmt(diff)}</td>"
                     f"<td>{_interval(ci.get('difference'))}</td></tr>")
    parts.append("</table>")
    parts.extend(_plots(evaluation))

    confusion = evaluation.get("confusion_matrix", {})
    if confusion and confusion.get("candidate"):
        classes = evaluation["classes"]
        for role in ("candidate", "baseline"):
            matrix = confusion.get(role)
            if not matrix:
                continue
            parts.append(f"<h2>Confusion matrix ({role}; rows: true, columns: predicted)</h2><table><tr><th></th>"
                         + "".join(f"<th>{_fmt(c)}</th>" for c in classes) + "</tr>")
            for name, row in zip(classes, matrix, strict=True):
                parts.append(f"<tr><th class=l>{_fmt(name)}</th>" + "".join(f"<td>{_fmt(x)}</td>" for x in row) + "</tr>")
            parts.append("</table>")

    headline = _headline(evaluation)
    parts.append(f"<h2>Slices</h2><p>min slice size {evaluation['config']['min_slice_size']}; smaller slices are "
                 "listed but not judged.</p><table><tr><th class=l>slice</th><th>rows</th>"
                 f"<th>{headline}</th><th>interval</th><th>trivial</th><th>baseline</th><th>interval</th></tr>")
    for entry in evaluation["slices"]:
        ci = entry.get("intervals", {}).get(headline, {})
        small = " <span class=skip>(too small)</span>" if entry["too_small"] else ""
        parts.append(f"<tr><td class=l>{_fmt(entry['slice'])}{small}</td><td>{_fmt(entry['count'])}</td>"
                     f"<td>{_fmt(entry['candidate'].get(headline))}</td><td>{_interval(ci.get('candidate'))}</td>"
                     f"<td>{_fmt((entry.get('trivial') or {}).get(headline))}</td>"
                     f"<td>{_fmt((entry['baseline'] or {}).get(headline))}</td><td>{_interval(ci.get('baseline'))}</td></tr>")
    parts.append("</table>")
    truncated = [spec for spec, flag in evaluation.get("slice_truncated", {}).items() if flag]
    if truncated:
        parts.append(f"<p>Slices of {', '.join(map(_fmt, truncated))} were capped at max_slices_per_spec; later "
                     "values are pooled in (other).</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
