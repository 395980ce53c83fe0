"""Prometheus metrics, structured logs and payload logging for the kfpc model server.

KServe already exports ``request_preprocess_seconds``, ``request_predict_seconds`` and
``request_postprocess_seconds`` on ``/metrics``; this module adds what a model owner watches:

* ``kfpc_request_latency_seconds{model_name,protocol}`` and ``kfpc_requests_total{...,code}`` (whole request,
  HTTP included),
* ``kfpc_predictions_total{model_name,class}`` and ``kfpc_prediction_score{model_name}`` (top-class
  probability, or the positive-class probability for a binary model), ``kfpc_prediction_value`` (regression),
* per feature, for drift monitoring: ``kfpc_feature_value`` (count/sum), ``kfpc_feature_value_squares_total``
  (for the variance), ``kfpc_feature_missing_total``, ``kfpc_feature_category_total{feature,value}`` (the
  first ``max_categories`` distinct values per feature, the rest as ``__other__``, so an unbounded
  string column cannot blow up the metric's cardinality),
* ``kfpc_batch_rows`` / ``kfpc_batch_requests`` (what the dynamic batcher achieved).

Payload logging writes one record per request to a JSONL file or posts it as a binary-mode CloudEvent
to an HTTP sink, from a background thread with a bounded queue: a slow sink drops records (counted in
``kfpc_payload_log_dropped_total``), it never slows predictions.
"""

from __future__ import annotations

import collections
import datetime
import json
import logging
import os
import queue
import threading
import urllib.request
import uuid
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram, Summary

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
OTHER = "__other__"
#: numeric feature values beyond this magnitude are not added to kfpc_feature_value / _squares (overflow)
MAX_SUMMED_VALUE = 1e150
CLOUDEVENT_TYPE = "dev.kfpc.serving.prediction"

REQUEST_LATENCY = Histogram("kfpc_request_latency_seconds", "Request latency by protocol, HTTP included",
                            ["model_name", "protocol"], buckets=LATENCY_BUCKETS)
REQUESTS = Counter("kfpc_requests_total", "Requests by protocol and status code", ["model_name", "protocol", "code"])
PREDICTIONS = Counter("kfpc_predictions", "Predicted rows per class", ["model_name", "class"])
SCORE = Histogram("kfpc_prediction_score", "Top-class (binary: positive-class) probability", ["model_name"],
                  buckets=SCORE_BUCKETS)
VALUE = Summary("kfpc_prediction_value", "Regression predictions", ["model_name"])
FEATURE_VALUE = Summary("kfpc_feature_value", "Non-missing numeric feature values", ["model_name", "feature"])
FEATURE_SQUARES = Counter("kfpc_feature_value_squares", "Sum of squared numeric feature values",
                          ["model_name", "feature"])
FEATURE_MISSING = Counter("kfpc_feature_missing", "Missing feature values", ["model_name", "feature"])
FEATURE_CATEGORY = Counter("kfpc_feature_category", "String feature values", ["model_name", "feature", "value"])
BATCH_ROWS = Histogram("kfpc_batch_rows", "Rows per model call", ["model_name"], buckets=BATCH_BUCKETS)
BATCH_REQUESTS = Histogram("kfpc_batch_requests", "Requests per model call", ["model_name"], buckets=BATCH_BUCKETS)
PAYLOAD_DROPPED = Counter("kfpc_payload_log_dropped", "Payload records dropped (sink slow or failing)",
                          ["model_name"])

logger = logging.getLogger("kfpc.serving")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message, and any ``extra`` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str = "json", level: str = "INFO") -> None:
    """Send kfpc's and kserve's logs to stderr, as JSON lines (``json``) or plain text (``text``).

    Args:
        log_format: ``json`` or ``text``.
        level: log level name.
    """
    if log_format not in ("json", "text"):
        raise ValueError(f"--log_format must be 'json' or 'text', got {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in ("kfpc", "kserve", "uvicorn", "uvicorn.error"):
        log = logging.getLogger(name)
        log.handlers = [handler]
        log.setLevel(level)
        log.propagate = False
    # kserve logs every request's latency on its trace logger and every error with a traceback; keep
    # the first off the default output (kfpc_request_latency_seconds has it) and the second as is.
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)


class PayloadLogger:
    """Writes prediction records to a JSONL file or a CloudEvents HTTP sink, off the request path.

    Args:
        sink: a file path (``.jsonl``) or an ``http://`` / ``https://`` URL.
        model_name: for the CloudEvent ``source`` and the drop metric.
        max_queue: records held while the sink is slow; more are dropped and counted.
        timeout_s: HTTP timeout per event.
    """

    def __init__(self, sink: str, model_name: str, max_queue: int = 10_000, timeout_s: float = 5.0):
        self.sink = sink
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._http = sink.startswith(("http://", "https://"))
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._file = None
        if not self._http:
            os.makedirs(os.path.dirname(os.path.abspath(sink)), exist_ok=True)
            self._file = open(sink, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._thread = threading.Thread(target=self._drain, name="kfpc-payload-log", daemon=True)
        self._thread.start()

    def log(self, record: dict) -> None:
        """Queue one record; drops it (and counts the drop) when the queue is full."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            PAYLOAD_DROPPED.labels(self.model_name).inc()

    def _drain(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            try:
                if self._http:
                    self._post(record)
                else:
                    self._file.write(json.dumps(record, default=str) + "\n")
                    if self._queue.empty():
                        self._file.flush()
            except Exception as err:  # a failing sink must not stop serving
                PAYLOAD_DROPPED.labels(self.model_name).inc()
                logger.warning("payload log to %s failed: %s", self.sink, err)

    def _post(self, record: dict) -> None:
        request = urllib.request.Request(
            self.sink,
            data=json.dumps(record, default=str).encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "ce-specversion": "1.0",
                "ce-id": record["id"],
                "ce-type": CLOUDEVENT_TYPE,
                "ce-source": f"kfpc-serving/{self.model_name}",
                "ce-time": record["time"],
            },
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=10)
        if self._file is not None:
            self._file.close()


class Observer:
    """Records every prediction into the metrics above and, optionally, a payload log.

    Args:
        model_name: the served model name (metric label).
        payload_log: a JSONL path or CloudEvents URL; None for no payload logging.
        max_categories: distinct values per string feature kept as metric labels.
    """

    def __init__(self, model_name: str, payload_log: str | None = None, max_categories: int = 50):
        self.model_name = model_name
        self.max_categories = max_categories
        self.payload = PayloadLogger(payload_log, model_name) if payload_log else None
        self._features: list = []
        self._classes: list[str] = []
        self._binary = False
        self._seen: dict[str, set] = {}
        self._lock = threading.Lock()
        self._children: dict = {}
        self._request_children: dict[tuple[str, int], tuple] = {}
        #: (registered model name, version) of the bound model, written into every payload-log record
        self.registered: tuple[str, str] = ("", "")

    def bind(self, model: Any) -> None:
        """Take the feature spec and classes from a loaded model."""
        self._features = list(model.features)
        self.registered = tuple(getattr(model, "registered", ("", "")))
        self._classes = [str(c) for c in (_card_get(model.card, "classes") or [])]
        self._binary = model.task == "binary" or len(self._classes) == 2
        self._seen = {f.name: set() for f in self._features}
        name = self.model_name
        self._children = {
            "score": SCORE.labels(name), "value": VALUE.labels(name),
            "batch_rows": BATCH_ROWS.labels(name), "batch_requests": BATCH_REQUESTS.labels(name),
        }
        for feature in self._features:
            self._children[("missing", feature.name)] = FEATURE_MISSING.labels(name, feature.name)
            if feature.dtype != "string":
                self._children[("value", feature.name)] = FEATURE_VALUE.labels(name, feature.name)
                self._children[("squares", feature.name)] = FEATURE_SQUARES.labels(name, feature.name)

    def record_batch(self, rows: int, requests: int) -> None:
        """One model call of ``rows`` rows from ``requests`` requests."""
        if self._children:
            self._children["batch_rows"].observe(rows)
            self._children["batch_requests"].observe(requests)

    def record_request(self, protocol: str, code: int, seconds: float) -> None:
        """One finished request (any status)."""
        children = self._request_children.get((protocol, code))
        if children is None:  # (labels() takes a lock and checks its arguments: once per protocol and code)
            children = (REQUEST_LATENCY.labels(self.model_name, protocol),
                        REQUESTS.labels(self.model_name, protocol, str(code)))
            self._request_children[(protocol, code)] = children
        children[0].observe(seconds)
        children[1].inc()

    def record_model_call(self, columns: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
        """One model call (a batch of one or more requests): feature and output metrics. Thread-safe."""
        self._record_outputs(outputs)
        self._record_features(columns)

    def record_prediction(self, protocol: str, columns: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                          seconds: float, headers: dict[str, str]) -> None:
        """One successful request: its latency (gRPC; REST is timed by the HTTP middleware) and payload log."""
        if protocol == "grpc-v2":
            self.record_request(protocol, 200, seconds)
        if self.payload is not None:
            self.payload.log({
                "id": headers.get("x-request-id") or headers.get("ce-id") or str(uuid.uuid4()),
                "time": datetime.datetime.now(datetime.UTC).isoformat(),
                "model_name": self.model_name,
                "registered_model": self.registered[0],
                "model_version": self.registered[1],
                "protocol": protocol,
                "inputs": {name: _jsonable(values) for name, values in columns.items()},
                "outputs": {name: _jsonable(values) for name, values in outputs.items()},
                "latency_ms": round(seconds * 1000, 3),
            })

    def _record_outputs(self, outputs: dict[str, np.ndarray]) -> None:
        if "probabilities" in outputs:
            probabilities = np.asarray(outputs["probabilities"], dtype=np.float64)
            if probabilities.ndim == 2 and probabilities.shape[1] == 2 and self._binary:
                scores = probabilities[:, 1]
            elif probabilities.ndim == 2:
                scores = probabilities.max(axis=1)
            else:
                scores = probabilities.reshape(-1)
            _observe_all(self._children["score"], scores)
        if "classes" in outputs:
            for name, count in collections.Counter(np.asarray(outputs["classes"]).tolist()).items():
                label = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
                PREDICTIONS.labels(self.model_name, label).inc(count)
        if "predictions" in outputs:
            _observe_summary_all(self._children["value"],
                                 np.asarray(outputs["predictions"], dtype=np.float64).reshape(-1))

    def _record_features(self, columns: dict[str, np.ndarray]) -> None:
        for feature in self._features:
            column = columns[feature.name]
            if feature.dtype == "string":
                counts = collections.Counter(column.tolist())
                missing = counts.pop("", 0) + counts.pop(b"", 0)
                seen = self._seen[feature.name]
                for value, count in counts.items():
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    if value not in seen:
                        with self._lock:  # model calls run in worker threads; keep the cap exact
                            if value not in seen and len(seen) >= self.max_categories:
                                value = OTHER
                            else:
                                seen.add(value)
                    FEATURE_CATEGORY.labels(self.model_name, feature.name, value).inc(count)
            else:
                present = column[~np.isnan(column)]
                missing = column.size - present.size
                # Beyond +-1e150 a square (or a long sum) overflows to inf, and one inf would spoil the
                # counter for the server's life: such values are left out of the value metrics.
                present = present[np.abs(present) <= MAX_SUMMED_VALUE]
                if present.size:
                    _observe_summary_all(self._children[("value", feature.name)], present)
                    self._children[("squares", feature.name)].inc(float(np.square(present).sum()))
            if missing:
                self._children[("missing", feature.name)].inc(missing)

    def close(self) -> None:
        """Flush and stop the payload log."""
        if self.payload is not None:
            self.payload.close()


def _observe_summary_all(summary: Any, values: np.ndarray) -> None:
    """``summary.observe(v)`` for every value: a Summary keeps only count and sum, so one update of each
    instead of a lock per value."""
    summary._count.inc(values.size)
    summary._sum.inc(float(values.sum()))


def _observe_all(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every value of a batch, one lock per bucket touched instead of per value.

    The same counts as prometheus_client's ``Histogram.observe`` (a value goes to the first bucket whose
    upper bound it does not exceed); observing row by row took a millisecond per 1,000-row model call.
    Falls back to ``observe`` if the client's internals are not the expected ones.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left"),
                         minlength=len(bounds) + 1)
    total.inc(float(values.sum()))
    for i in np.flatnonzero(counts[: len(bounds)]):
        buckets[i].inc(int(counts[i]))


def _card_get(card: Any, key: str) -> Any:
    return card.get(key) if isinstance(card, dict) else getattr(card, key, None)


def _jsonable(values: Any) -> list:
    array = np.asarray(values)
    if array.dtype.kind == "f":
        return [None if v != v else v for v in array.tolist()]  # NaN is not JSON
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.tolist()]
