"""Synthetic Prometheus series of a kfpc model server for ``promtool test rules``: a clean world that matches
the reference exactly, and one fault per alert."""

from __future__ import annotations

import copy

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# promtool evaluates every rule at every evaluation interval up to the end: short windows keep the test fast
WINDOW, FOR, OFFSET, EVALUATION_INTERVAL = "6m", "4m", "30m", "2m"
MINUTES = 46
EVAL_MINUTE = 40
REQUESTS_PER_MIN = 200.0
ROWS_PER_MIN = 1000.0


def _labels(base: dict, **extra) -> str:
    items = {**base, **extra}
    return "{" + ",".join(f'{k}="{v}"' for k, v in items.items()) + "}"


def _values(segments: list[tuple[float, int]]) -> str:
    """A counter growing by ``rate`` per minute for ``minutes`` minutes, segment after segment."""
    parts, value, first = [], 0.0, True
    for rate, minutes in segments:
        if first:
            parts.append(f"{_fmt(value)}+{_fmt(rate)}x{minutes}")
            value += rate * minutes
            first = False
        else:
            value += rate
            parts.append(f"{_fmt(value)}+{_fmt(rate)}x{minutes - 1}")
            value += rate * (minutes - 1)
    return " ".join(parts)


def _fmt(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def clean_world(reference: dict) -> dict:
    """Per-minute rates of every series, matching the reference (the model serves what it was trained on)."""
    return {
        "codes": {"200": REQUESTS_PER_MIN},
        "latency_s": 0.004,
        "up": 1,
        "throughput_recent": None,  # requests per minute over the last 30 minutes, None: unchanged
        "scores": list(reference.get("score_shares") or []),
        "features": copy.deepcopy(reference["features"]),
    }


def series(world: dict, base: dict) -> list[dict]:
    """``input_series`` of promtool for a world (see :func:`clean_world`)."""
    out = []
    total = sum(world["codes"].values())

    def counter(name, labels, rate):
        if world["throughput_recent"] is not None and name == "kfpc_requests_total":
            recent = rate * world["throughput_recent"] / total
            segments = [(rate, MINUTES - 30), (recent, 30)]
        else:
            segments = [(rate, MINUTES)]
        out.append({"series": name + _labels(base, **labels), "values": _values(segments)})

    for code, rate in world["codes"].items():
        counter("kfpc_requests_total", {"protocol": "v1", "code": code}, rate)
    for bound in [*LATENCY_BUCKETS, "+Inf"]:
        inside = bound == "+Inf" or world["latency_s"] <= bound
        counter("kfpc_request_latency_seconds_bucket", {"protocol": "v1", "le": str(bound)}, total if inside else 0)
    counter("kfpc_request_latency_seconds_count", {"protocol": "v1"}, total)
    counter("kfpc_batch_rows_sum", {}, ROWS_PER_MIN)
    out.append({"series": "up" + _labels({"job": "kserve", "namespace": base["namespace"],
                                          "pod": f"{base['model_name']}-predictor-0"}),
                "values": f"{world['up']}+0x{MINUTES}"})
    if world["scores"]:
        cumulative = 0.0
        for i, share in enumerate(world["scores"]):
            cumulative += share
            counter("kfpc_prediction_score_bucket", {"le": repr(round(0.05 * (i + 1), 2))}, ROWS_PER_MIN * cumulative)
        counter("kfpc_prediction_score_bucket", {"le": "+Inf"}, ROWS_PER_MIN)
        counter("kfpc_prediction_score_count", {}, ROWS_PER_MIN)
    for feature in world["features"]:
        name = feature["name"]
        present = ROWS_PER_MIN * (1 - feature["missing_share"])
        counter("kfpc_feature_missing_total", {"feature": name}, ROWS_PER_MIN * feature["missing_share"])
        if feature["kind"] == "numeric":
            counter("kfpc_feature_value_count", {"feature": name}, present)
            counter("kfpc_feature_value_sum", {"feature": name}, present * feature.get("mean", 0.0))
        for value, share in (feature.get("categories") or {}).items():
            if share > 0:
                counter("kfpc_feature_category_total", {"feature": name, "value": value}, present * share)
    return out


def faults(reference: dict) -> dict:
    """alert name -> (world with the fault, expected extra labels of the firing alert)."""
    out = {}
    numeric = next(f for f in reference["features"] if f["kind"] == "numeric" and f.get("std"))
    categorical = next(f for f in reference["features"] if f.get("categories"))

    def world(change):
        w = clean_world(reference)
        change(w)
        return w

    out["KfpcServerErrors"] = (world(lambda w: w["codes"].update({"500": 20.0})), {})
    out["KfpcClientErrors"] = (world(lambda w: w["codes"].update({"400": 60.0})), {})
    out["KfpcLatencyP99"] = (world(lambda w: w.update(latency_s=2.0)), {})
    out["KfpcNotReady"] = (world(lambda w: w.update(up=0)), {})
    out["KfpcThroughputDrop"] = (world(lambda w: w.update(throughput_recent=50.0)), {})
    if reference.get("score_shares"):
        out["KfpcPredictionShift"] = (world(lambda w: w.update(scores=[0.0] * 19 + [1.0])), {})

    def missing(w):
        next(f for f in w["features"] if f["name"] == numeric["name"])["missing_share"] = 0.3

    def shifted(w):
        f = next(f for f in w["features"] if f["name"] == numeric["name"])
        f["mean"] = f["mean"] + 2 * f["std"]

    def category(w):
        f = next(f for f in w["features"] if f["name"] == categorical["name"])
        rare = min((v for v in f["categories"] if v != "__other__"), key=lambda v: f["categories"][v])
        f["categories"] = {rare: 1.0}

    out["KfpcFeatureMissingRate"] = (world(missing), {"feature": numeric["name"]})
    out["KfpcFeatureMeanShift"] = (world(shifted), {"feature": numeric["name"]})
    out["KfpcFeatureCategoryDrift"] = (world(category), {"feature": categorical["name"]})
    return out
