"""Push a blessed model to KServe: versioned copy, InferenceService, canary, promotion, rollback.

Three modes share one code path:

* ``cluster``: copy the model to ``<serving_root>/<name>/v<N>``, then create or patch the InferenceService
  through the Kubernetes API and wait for Ready (see :mod:`kfpc.components.push.rollout`).
* ``dry_run``: nothing is written anywhere but ``output_dir``. The version the push would take is worked out
  from the serving root (read-only); the same rollout code runs against a recorder, so ``requests`` are the
  exact HTTP requests the kubernetes client would send to a cluster where the service does not exist yet
  (or is ``existing_manifest``).
* ``local``: copy the model, start our model server on the pushed copy (a subprocess, which is where
  TensorFlow is imported) and send v1 and v2 predict requests built from the model card: infra validation
  that the pushed folder loads and answers.

This module imports neither kfp nor kubernetes nor tensorflow; the Kubernetes client lives in
:mod:`kfpc.components.push.kube` and is imported only in ``cluster`` and ``dry_run`` modes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from .. import artifacts, contract, images, types
from .. import defaults as D
from .._fs import atomic_dir
from .._redact import redact, redact_obj
from . import manifest, storage

log = logging.getLogger(__name__)

MODES = ("dry_run", "local", "cluster")
MANIFEST_FILE = "inferenceservice.yaml"
REQUESTS_FILE = "requests.json"
RESULT_FILE = "push.json"
SMOKE_FILE = "smoke.json"
#: what push copies from monitoring_config's output beside the manifest (names as monitor.core writes them)
MONITORING_FILES = ("prometheusrule.yaml", "dashboard.json")

# artifact metadata keys written by the component (documented in README.md)
ENDPOINT_URL = "endpoint_url"
MODEL_URI = "model_uri"
PREVIOUS_MODEL_URI = "previous_model_uri"


class PushError(ValueError):
    """The push was refused before anything was deployed; the message names the input and the value."""


class NotBlessedError(PushError):
    """The blessing says the model is not better than production."""


class SmokeTestError(RuntimeError):
    """The pushed model loaded but answered a smoke request wrongly (or did not load)."""


@dataclasses.dataclass
class PushResult:
    """What a push did.

    Attributes:
        endpoint_url: the InferenceService URL (cluster), its in-cluster address (dry_run), or the local
            server's URL, which is stopped when the push returns (local).
        model_uri: the versioned copy (``<serving_root>/<name>/v<N>``); predicted, not written, in dry_run.
        previous_model_uri: the model served before this push: the InferenceService's model (cluster,
            dry_run with ``existing_manifest``) or the newest earlier version under the serving root.
        manifest: the InferenceService serving ``model_uri`` at 100%.
        requests: the Kubernetes API requests sent (cluster) or that would be sent (dry_run).
        action: ``created`` | ``updated`` | ``canary`` | ``promoted`` | ``smoke-tested``.
        traffic_percent: the new model's share of traffic.
        smoke: local mode: the requests sent and the answers' summaries.
        vertex_model, vertex_endpoint: push_vertex: the Model and Endpoint resource names
            (``projects/.../models/...``; placeholders in dry_run); ``vertex_api_endpoint`` their API host.
    """

    endpoint_url: str
    model_uri: str
    previous_model_uri: str
    manifest: dict[str, Any]
    requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    action: str = ""
    traffic_percent: int = 100
    smoke: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    vertex_model: str = ""
    vertex_endpoint: str = ""
    vertex_api_endpoint: str = ""

    def metadata(self) -> dict[str, Any]:
        """Artifact metadata (keys documented in the README)."""
        return {
            ENDPOINT_URL: self.endpoint_url,
            MODEL_URI: self.model_uri,
            PREVIOUS_MODEL_URI: self.previous_model_uri,
            "action": self.action,
            "traffic_percent": self.traffic_percent,
        }


def check_blessing(blessed: Any, force: bool = False, source: str = "blessed") -> None:
    """Refuse a model that is not blessed, unless ``force``.

    Args:
        blessed: the blessing: ``True``/``False`` (strings ``"true"``/``"false"`` from artifact metadata too).
        force: push anyway (logged).
        source: what ``blessed`` came from, for the message.
    Raises:
        NotBlessedError: not blessed and not forced.
        PushError: ``blessed`` is missing or not a boolean.
    """
    if isinstance(blessed, str) and blessed.strip().lower() in ("true", "false"):
        blessed = blessed.strip().lower() == "true"
    if not isinstance(blessed, bool):
        raise PushError(f"{source}: expected a boolean blessing, got {blessed!r}")
    if not blessed:
        if force:
            log.warning("%s is False but force=True: pushing a model that is not blessed", source)
            return
        raise NotBlessedError(
            f"{source} is False: the model did not pass evaluation against production; refusing to push "
            f"(set force=True to push anyway)"
        )


# ------------------------------------------------------------------ local smoke test


def smoke_rows(card: dict[str, Any], data_dir: str | os.PathLike | None = None, rows: int = 2) -> list[dict[str, Any]]:
    """A few example rows keyed by feature name: from the Dataset's eval split when given, else synthetic.

    Synthetic rows exercise the missing-value paths of the contract: an empty string and a ``null`` number.
    """
    features = card.get(types.FEATURES) or []
    if not features:
        raise PushError(f"model card has no '{types.FEATURES}': cannot build smoke requests")
    names = [f["name"] for f in features]
    if data_dir:
        import pyarrow.parquet as pq

        splits = artifacts.dataset_splits(data_dir)
        path = artifacts.split_file(data_dir, types.EVAL if types.EVAL in splits or not splits else types.TRAIN)
        table = pq.read_table(path, columns=[n for n in names if n in pq.read_schema(path).names])
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise PushError(f"{path}: the model's features {missing} are not columns of the dataset")
        out = [{k: _json_value(v) for k, v in row.items()} for row in table.slice(0, rows).to_pylist()]
        if out:
            return out
    synthetic = []
    for i in range(rows):
        row = {}
        for f in features:
            missing = i > 0 and f.get("allow_missing", True)
            if f.get("dtype") == "string":
                row[f["name"]] = "" if missing else "__kfpc_smoke__"
            else:
                row[f["name"]] = None if missing else 1.0
        synthetic.append(row)
    return synthetic


def _json_value(value: Any) -> Any:
    """A Parquet cell as a client would send it in JSON: NaN as null, dates and times as ISO 8601 text."""
    import datetime
    import decimal

    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _post(url: str, body: dict[str, Any], timeout: float = 30.0) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")[:500]


def smoke_test(url: str, model_name: str, card: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send v1 and v2 predict requests and check the answers' shape against the model contract.

    Args:
        url: server base URL.
        model_name: model name in the URL.
        card: the model card.
        rows: example rows (feature -> value, ``None`` = missing).
    Returns:
        One record per request: protocol, URL, request body, HTTP status, and the checked answer.
    Raises:
        SmokeTestError: a non-200 answer, a wrong number of predictions, or missing outputs.
    """
    records = []
    v1_url = f"{url}/v1/models/{model_name}:predict"
    v1_body = {"instances": rows}
    status, answer = _post(v1_url, v1_body)
    records.append({"protocol": "v1", "url": v1_url, "request": v1_body, "status": status, "response": answer})
    if status != 200:
        raise SmokeTestError(f"v1 predict at {v1_url} answered HTTP {status}: {answer}")
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != len(rows):
        raise SmokeTestError(f"v1 predict at {v1_url}: expected {len(rows)} predictions, got {str(answer)[:300]}")

    features = {f["name"]: f for f in card[types.FEATURES]}
    inputs = []
    for name, feature in features.items():
        values = [row.get(name) for row in rows]
        if feature.get("dtype") == "string":
            inputs.append({"name": name, "shape": [len(rows)], "datatype": "BYTES",
                           "data": ["" if v is None else str(v) for v in values]})
        else:
            # v2 JSON has no NaN; a missing number goes as NaN only in binary payloads, so send 0.0 here
            inputs.append({"name": name, "shape": [len(rows)], "datatype": "FP64",
                           "data": [0.0 if v is None else float(v) for v in values]})
    v2_url = f"{url}/v2/models/{model_name}/infer"
    v2_body = {"id": "kfpc-push-smoke", "inputs": inputs}
    status, answer = _post(v2_url, v2_body)
    records.append({"protocol": "v2", "url": v2_url, "request": v2_body, "status": status, "response": answer})
    if status != 200:
        raise SmokeTestError(f"v2 infer at {v2_url} answered HTTP {status}: {answer}")
    outputs = {o.get("name"): o for o in (answer.get("outputs") or [])} if isinstance(answer, dict) else {}
    missing = [name for name in contract.expected_outputs(card) if name not in outputs]
    if missing:
        raise SmokeTestError(f"v2 infer at {v2_url}: outputs {missing} missing from {sorted(outputs)}")
    for name in contract.expected_outputs(card):
        if outputs[name].get("shape", [None])[0] != len(rows):
            raise SmokeTestError(f"v2 infer at {v2_url}: output {name} has shape {outputs[name].get('shape')}, "
                                 f"expected {len(rows)} rows")
    return records


# ------------------------------------------------------------------ push_kserve


def push_kserve(
    model_dir: str | os.PathLike,
    *,
    serving_root: str,
    name: str,
    namespace: str = D.NAMESPACE,
    mode: str = D.PUSH_MODE,
    blessed: Any = True,
    force: bool = False,
    canary_traffic_percent: int | None = 0,
    promote: bool = False,
    deployment_mode: str = manifest.STANDARD,
    predictor: str = "kfpc",
    image: str = "",
    protocol: str = "",
    cpu_request: str = D.CPU_REQUEST,
    memory_request: str = D.MEMORY_REQUEST,
    cpu_limit: str = D.CPU_LIMIT,
    memory_limit: str = D.MEMORY_LIMIT,
    gpu: int = D.GPU,
    min_replicas: int = D.MIN_REPLICAS,
    max_replicas: int = D.MAX_REPLICAS,
    service_account: str = "",
    runtime_version: str = "",
    node_selector: dict[str, str] | None = None,
    batcher_max_batch_size: int = 0,
    batcher_max_latency_ms: int = 0,
    timeout_s: float = D.TIMEOUT_S,
    poll_s: float = 2.0,
    bake_s: float = D.BAKE_S,
    max_error_rate: float = D.MAX_ERROR_RATE,
    max_p99_latency_ms: float = D.MAX_P99_LATENCY_MS,
    min_requests: int = D.MIN_REQUESTS,
    max_error_rate_increase: float = D.MAX_ERROR_RATE_INCREASE,
    max_p99_ratio: float = D.MAX_P99_RATIO,
    prometheus_url: str = "",
    prometheus_selector: str = "",
    prometheus_stable_selector: str = "",
    canary_metrics_url: str = "",
    output_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    monitoring_dir: str | os.PathLike | None = None,
    existing_manifest: dict[str, Any] | None = None,
    kube_client=None,
    storage_client=None,
    server_startup_timeout: float = 180.0,
) -> PushResult:
    """Push a model to KServe (or rehearse it: ``dry_run``; or smoke-test the pushed copy: ``local``).

    Args:
        model_dir: the Model artifact folder (``1/saved_model.pb``, ``model_card.json``).
        serving_root: where versioned copies live: local path, ``gs://`` or ``s3://`` (cluster: not local).
        name: InferenceService name, also the model's folder under the root.
        namespace: Kubernetes namespace.
        mode: ``dry_run`` | ``local`` | ``cluster``.
        blessed: the evaluation's verdict; a model that is not blessed is refused unless ``force``.
        force: push even if not blessed.
        canary_traffic_percent: 1..99 to canary the new model; 0 (or ``None`` / 100) = all traffic.
        promote: after a Ready canary has baked within the thresholds below, move it to 100%.
        deployment_mode: ``Standard`` or ``Knative`` (legacy ``RawDeployment`` / ``Serverless`` accepted).
        predictor: ``kfpc`` (our server, ``image``) or ``tensorflow`` (KServe's TF Serving runtime, v1 only).
        image: predictor image for ``kfpc``; empty: this release's serving image.
        protocol: ``v1`` or ``v2``; empty = ``v2`` for kfpc, ``v1`` for tensorflow.
        cpu_request, memory_request, cpu_limit, memory_limit: Kubernetes quantities ("" = unset).
        gpu: GPUs per replica.
        min_replicas, max_replicas: autoscaling bounds.
        service_account: predictor pod's service account (it must be able to read ``serving_root``).
        runtime_version: TF Serving tag for ``tensorflow`` (e.g. ``2.6.2-gpu`` with a GPU).
        node_selector: node labels for the predictor pods.
        batcher_max_batch_size: > 0 adds KServe's request batcher sidecar with this batch size; 0 = none.
        batcher_max_latency_ms: the batcher's longest wait for a batch, ms (0 = KServe's default).
        timeout_s: seconds to wait for Ready, per step (rollout; then promotion).
        poll_s: seconds between status (and canary metrics) reads.
        bake_s: promote: seconds the Ready canary must serve within the thresholds before promotion.
        max_error_rate: promote: highest share of 5xx answers of the canary (0..1).
        max_p99_latency_ms: promote: highest p99 request latency of the canary, milliseconds.
        min_requests: promote: requests the canary must have answered to be judged (the bake waits up to
            ``timeout_s`` longer for them, then fails); with Prometheus, the stable revision must have too.
        max_error_rate_increase: promote with Prometheus: how far the canary's 5xx share may exceed the stable
            revision's over the same window (absolute).
        max_p99_ratio: promote with Prometheus: the canary's p99 may be at most this factor times the stable's.
        prometheus_url: promote: Prometheus base URL; the canary is judged by ``/api/v1/query``.
        prometheus_selector: label matchers (no braces) picking the canary's series in Prometheus;
            ``{namespace}``, ``{name}``, ``{revision}`` (the canary's Knative revision) are filled in. Empty =
            Knative: ``namespace="{namespace}",model_name="{name}",pod=~"{revision}-deployment-.*"``;
            Standard mode needs it given.
        prometheus_stable_selector: label matchers picking the stable revision's series, the canary's baseline;
            ``{stable_revision}`` (``status.components.predictor.latestRolledoutRevision``) is filled in too.
            Empty: ``prometheus_selector`` (or its Knative default) with ``{revision}`` replaced by the stable
            revision; a selector without ``{revision}`` then has no baseline (absolute limits only).
        canary_metrics_url: promote without Prometheus: the canary's own ``/metrics`` URL.
        output_dir: where to write the manifest, the requests and a summary (atomically); None = nowhere.
        data_dir: optional Dataset folder; local mode takes its smoke rows from the eval split.
        monitoring_dir: optional ``monitoring_config`` output; its ``prometheusrule.yaml`` and ``dashboard.json``
            are written into ``output_dir`` beside the manifest (not applied to the cluster).
        existing_manifest: dry_run: the InferenceService as it is in the cluster (e.g. ``kubectl get -o json``).
        kube_client: an ``IsvcClient`` to use instead of the in-cluster / kubeconfig one.
        storage_client: a Cloud Storage or S3 client to use instead of the default one.
        server_startup_timeout: local mode: seconds for the model server to load the model.
    Returns:
        The :class:`PushResult`.
    Raises:
        NotBlessedError: not blessed and not forced (nothing written).
        PushError, storage.StorageError, manifest.ManifestError: bad input (nothing written).
        rollout.RolloutError: the rollout or the canary's bake failed (previous spec restored and verified);
            rollout.RolloutConflict: another writer changed the service meanwhile; kube.KubeError: API refusal.
        SmokeTestError: local mode: the pushed copy did not load or answer.
    """
    if mode not in MODES:
        raise PushError(f"mode must be one of {MODES}, got {mode!r}")
    check_blessing(blessed, force)
    storage.check_model_dir(model_dir)
    if canary_traffic_percent in (0, 100):
        canary_traffic_percent = None  # pipelines pass 0 for "no canary"; 100 is a plain rollout
    if promote and canary_traffic_percent is None:
        log.info("promote=True without a canary percentage: the rollout is at 100%% already")
    opts = manifest.ServingOptions(
        name=name, namespace=namespace, predictor=predictor, image=image or images.SERVING,
        protocol=protocol or ("v1" if predictor == "tensorflow" else "v2"),
        deployment_mode=deployment_mode, cpu_request=cpu_request, memory_request=memory_request,
        cpu_limit=cpu_limit, memory_limit=memory_limit, gpu=gpu, min_replicas=min_replicas,
        max_replicas=max_replicas, service_account=service_account, runtime_version=runtime_version,
        node_selector=dict(node_selector or {}),
        batcher_max_batch_size=batcher_max_batch_size, batcher_max_latency_ms=batcher_max_latency_ms,
    )
    if canary_traffic_percent is not None:
        manifest._check_percent(canary_traffic_percent)
    from . import canary

    try:
        thresholds = canary.Thresholds(bake_s=bake_s, max_error_rate=max_error_rate,
                                       max_p99_latency_ms=max_p99_latency_ms, min_requests=min_requests,
                                       max_error_rate_increase=max_error_rate_increase, max_p99_ratio=max_p99_ratio)
    except ValueError as err:
        raise PushError(str(err)) from None
    baking = mode == "cluster" and promote and canary_traffic_percent is not None
    if baking and not (prometheus_url or canary_metrics_url):
        raise PushError("promote after a canary needs prometheus_url or canary_metrics_url to judge the canary's "
                        "error rate and latency before promotion; nothing was written")
    if baking and prometheus_url and not prometheus_selector and opts.mode == manifest.STANDARD:
        raise PushError("prometheus_selector is required in Standard mode: label matchers that select the canary's "
                        "pods only (e.g. pod=~\"<canary-deployment>-.*\"); nothing was written")
    source = canary_source(opts, prometheus_url, prometheus_selector, canary_metrics_url, prometheus_stable_selector)
    card = contract.read_card(model_dir) if (mode == "local" or contract.card_file(model_dir).exists()) else {}
    if mode == "cluster" and not serving_root.startswith(("gs://", "s3://")):
        raise PushError(
            f"serving_root {serving_root!r}: a cluster push needs a gs:// or s3:// root that KServe's storage "
            f"initializer can download from"
        )
    if mode == "local" and serving_root.startswith("s3://"):
        raise PushError(f"serving_root {serving_root!r}: local mode serves the pushed copy from a local or gs:// root")
    if output_dir is not None and Path(output_dir).exists() and any(Path(output_dir).iterdir()):
        raise PushError(f"output_dir {output_dir} is not empty")
    monitoring = monitoring_files(monitoring_dir)

    if mode == "dry_run":
        result = _dry_run(model_dir, serving_root, opts, canary_traffic_percent, promote, existing_manifest,
                          storage_client)
    else:
        client = None
        if mode == "cluster":
            from . import kube

            # Connect before copying: a task without cluster credentials must fail before it writes anything.
            client = kube_client or kube.IsvcClient.from_environment()
        pushed = storage.push_model(model_dir, serving_root, name, client=storage_client)
        log.info("pushed %s to %s (previous version: %s)", model_dir, redact(pushed.uri),
                 redact(pushed.previous_uri or "none"))
        desired = manifest.render(opts, pushed.uri, model_version=pushed.version)
        if mode == "local":
            try:
                result = _local(pushed, opts, desired, card, data_dir, server_startup_timeout)
            except SmokeTestError:
                # Nothing serves this copy and it failed: remove it so the next push cannot take it as a baseline.
                storage.remove_version(pushed.uri, storage_client)
                raise
        else:
            from . import rollout

            outcome = rollout.rollout(client, desired, opts, canary_traffic_percent=canary_traffic_percent,
                                      promote=promote, timeout_s=timeout_s, poll_s=poll_s,
                                      canary_source=source, thresholds=thresholds)
            result = PushResult(outcome.endpoint_url, pushed.uri, outcome.previous_model_uri, desired,
                                action=outcome.action, traffic_percent=outcome.traffic_percent)
    if output_dir is not None:
        write_outputs(result, output_dir, monitoring)
    return result


def monitoring_files(monitoring_dir: str | os.PathLike | None) -> dict[str, bytes]:
    """The alert rules and dashboard of ``monitoring_dir`` (read before the push, so a bad folder writes nothing).

    Raises:
        PushError: a file of :data:`MONITORING_FILES` is missing or empty.
    """
    if monitoring_dir is None:
        return {}
    found = {}
    for name in MONITORING_FILES:
        path = Path(monitoring_dir) / name
        content = path.read_bytes() if path.is_file() else b""
        if not content.strip():
            raise PushError(f"monitoring: {path} is missing or empty (expected monitoring_config's output "
                            f"folder with {', '.join(MONITORING_FILES)}); nothing was pushed")
        found[name] = content
    return found


class _DryRunCanary:
    def sample(self, window_s: float):
        from .canary import Sample

        return Sample(0, 0, None, "dry run: nothing served, no bake")


def canary_source(opts: manifest.ServingOptions, prometheus_url: str = "", prometheus_selector: str = "",
                  canary_metrics_url: str = "", prometheus_stable_selector: str = ""):
    """The factory ``rollout`` calls with the Ready canary: Prometheus when a URL is given, else ``/metrics``.

    Returns ``None`` when neither URL is given (then a canary cannot be promoted).
    """
    from . import canary as canary_mod

    if prometheus_url:
        def prometheus(ready: dict[str, Any]):
            predictor = ((ready.get("status") or {}).get("components") or {}).get("predictor") or {}
            revision = predictor.get("latestCreatedRevision") or ""
            stable = predictor.get("latestRolledoutRevision") or ""
            template = prometheus_selector or 'namespace="{namespace}",model_name="{name}",pod=~"{revision}-deployment-.*"'
            if "{revision}" in template and not revision:
                raise canary_mod.CanaryFailed(
                    f"inferenceservice {opts.namespace}/{opts.name} reports no "
                    f"status.components.predictor.latestCreatedRevision: cannot select the canary's series")
            if "{stable_revision}" in prometheus_stable_selector and not stable:
                raise canary_mod.CanaryFailed(
                    f"inferenceservice {opts.namespace}/{opts.name} reports no "
                    f"status.components.predictor.latestRolledoutRevision: cannot select the stable series")

            def fill(text: str) -> str:
                return (text.replace("{namespace}", opts.namespace).replace("{name}", opts.name)
                        .replace("{revision}", revision).replace("{stable_revision}", stable))

            # derived like the canary's: the same matchers on the revision that had 100% before this rollout
            derived = template.replace("{revision}", stable) if "{revision}" in template and stable else ""
            baseline = fill(prometheus_stable_selector or derived)
            if not baseline:
                log.info("no stable-revision selector: the canary is judged by the absolute limits only")
            return canary_mod.PrometheusSource(prometheus_url, fill(template), baseline_selector=baseline)

        return prometheus
    if canary_metrics_url:
        return lambda _ready: canary_mod.MetricsEndpointSource(canary_metrics_url, opts.name)
    return None


def _dry_run(model_dir, serving_root, opts, canary, promote, existing, storage_client) -> PushResult:
    from . import canary as canary_mod
    from . import kube, rollout

    base = storage._join(storage._normalize_root(serving_root), opts.name)
    versions = storage.backend_for(storage._normalize_root(serving_root), storage_client).versions(base)
    version = f"v{max(versions, default=0) + 1}"
    scheme = "file://" if serving_root.startswith("file://") else ""
    model_uri = scheme + storage._join(base, version)
    complete = [n for n, ok in versions.items() if ok]
    previous = scheme + storage._join(base, f"v{max(complete)}") if complete else ""
    desired = manifest.render(opts, model_uri, model_version=version)
    client, pool = kube.dry_run_client(existing)
    # Nothing serves in a dry run: the bake is shown as passed at once, so the promotion's request is recorded.
    outcome = rollout.rollout(client, desired, opts, canary_traffic_percent=canary, promote=promote,
                              timeout_s=5.0, poll_s=0.0, canary_source=lambda _ready: _DryRunCanary(),
                              thresholds=canary_mod.Thresholds(bake_s=0, min_requests=0))
    return PushResult(outcome.endpoint_url, model_uri, outcome.previous_model_uri or previous, desired,
                      requests=pool.requests, action=outcome.action, traffic_percent=outcome.traffic_percent)


def _local(pushed, opts, desired, card, data_dir, startup_timeout) -> PushResult:
    from .._fs import local_path
    from ..contract.local_server import LocalServer

    path = local_path(pushed.uri)  # gs:// is read through the /gcs FUSE mount
    rows = smoke_rows(card, data_dir)
    try:
        with LocalServer(path, model_name=opts.name, startup_timeout=startup_timeout) as server:
            records = smoke_test(server.url, opts.name, card, rows)
            url = server.url
    except SmokeTestError:
        raise
    except Exception as err:  # the server's start failure carries the log tail: that is the finding
        raise SmokeTestError(f"the pushed model at {pushed.uri} did not load in the model server: {err}") from err
    return PushResult(url, pushed.uri, pushed.previous_uri, desired, action="smoke-tested", smoke=records)


def write_outputs(result: PushResult, output_dir: str | os.PathLike, monitoring: dict[str, bytes] | None = None) -> None:
    """Write ``inferenceservice.yaml``, ``requests.json``, ``push.json`` (and ``smoke.json``, and the
    ``monitoring`` files by name) atomically."""
    # Credentials in a URL or header never reach an artifact (the requests sent are not changed by this).
    with atomic_dir(output_dir) as scratch:
        (scratch / MANIFEST_FILE).write_text(yaml.safe_dump(redact_obj(result.manifest), sort_keys=False))
        (scratch / REQUESTS_FILE).write_text(json.dumps(redact_obj(result.requests), indent=2))
        (scratch / RESULT_FILE).write_text(json.dumps(redact_obj(result.metadata()), indent=2))
        if result.smoke:
            (scratch / SMOKE_FILE).write_text(json.dumps(result.smoke, indent=2))
        for name, content in (monitoring or {}).items():
            (scratch / name).write_bytes(content)


# ------------------------------------------------------------------ push_vertex

VERTEX_MODES = ("dry_run", "cloud")
VERTEX_REQUESTS_FILE = "vertex_requests.json"


def push_vertex(
    model_dir: str | os.PathLike,
    *,
    serving_root: str,
    name: str,
    project: str,
    location: str,
    mode: str = "dry_run",
    blessed: Any = True,
    force: bool = False,
    container: str = D.VERTEX_CONTAINER,
    image: str = "",
    tf_version: str = D.VERTEX_TF_VERSION,
    machine_type: str = D.VERTEX_MACHINE_TYPE,
    accelerator_type: str = "",
    accelerator_count: int = 0,
    min_replica_count: int = D.VERTEX_MIN_REPLICA_COUNT,
    max_replica_count: int = D.VERTEX_MAX_REPLICA_COUNT,
    traffic_percent: int = D.VERTEX_TRAFFIC_PERCENT,
    endpoint: str = "",
    parent_model: str = "",
    service_account: str = "",
    current_traffic_split: dict[str, int] | None = None,
    timeout_s: float = float(D.VERTEX_TIMEOUT_S),
    output_dir: str | os.PathLike | None = None,
    storage_client=None,
    credentials=None,
) -> PushResult:
    """Copy the model to a new version under a ``gs://`` root, register it in Vertex AI and deploy it.

    Args:
        model_dir: the Model artifact folder.
        serving_root: ``gs://`` root of the versioned copies (dry_run also accepts a local path).
        name: the model's folder under the root and its Vertex display name.
        project, location: Google Cloud project and Vertex AI region.
        mode: ``dry_run`` (requests only; nothing copied or sent) or ``cloud``.
        blessed, force: as for :func:`push_kserve`.
        container: ``kfpc`` (our image) or ``tensorflow`` (Vertex's prebuilt TF Serving, ``tf_version``).
        image: serving image for ``kfpc``; empty: this release's serving image.
        tf_version: prebuilt TensorFlow container version.
        machine_type, accelerator_type, accelerator_count: serving machine.
        min_replica_count, max_replica_count: autoscaling bounds.
        traffic_percent: the new model's share of the endpoint's traffic.
        endpoint: existing endpoint (name or id); empty creates one.
        parent_model: existing registry model to add a version to.
        service_account: the deployed model's service account.
        current_traffic_split: dry run against an existing endpoint: its current split.
        timeout_s: seconds per long-running operation.
        output_dir: where to write ``vertex_requests.json`` and ``push.json`` (atomically).
        storage_client: a Cloud Storage client to use instead of the default.
        credentials: Google credentials for the cloud mode (None = application default).
    Returns:
        A :class:`PushResult`; ``manifest`` holds the upload and deploy requests, ``requests`` all of them.
    """
    from . import vertex

    if mode not in VERTEX_MODES:
        raise PushError(f"mode must be one of {VERTEX_MODES}, got {mode!r}")
    check_blessing(blessed, force)
    storage.check_model_dir(model_dir)
    opts = vertex.VertexOptions(
        project=project, location=location, display_name=name, container=container, image=image or images.SERVING,
        tf_version=tf_version, machine_type=machine_type, accelerator_type=accelerator_type,
        accelerator_count=accelerator_count, min_replica_count=min_replica_count,
        max_replica_count=max_replica_count, traffic_percent=traffic_percent, endpoint=endpoint,
        parent_model=parent_model, service_account=service_account, labels={"managed-by": "kfpc"},
    )
    if mode == "cloud" and not serving_root.startswith("gs://"):
        raise PushError(f"serving_root {serving_root!r}: Vertex AI reads models from Cloud Storage; use gs://")
    if output_dir is not None and Path(output_dir).exists() and any(Path(output_dir).iterdir()):
        raise PushError(f"output_dir {output_dir} is not empty")
    if mode == "dry_run":
        root = storage._normalize_root(serving_root)
        base = storage._join(root, name)
        versions = storage.backend_for(root, storage_client).versions(base)
        model_uri = storage._join(base, f"v{max(versions, default=0) + 1}")
        complete = [n for n, ok in versions.items() if ok]
        previous = storage._join(base, f"v{max(complete)}") if complete else ""
        outcome = vertex.push(opts, model_uri, dry_run=True, current_traffic_split=current_traffic_split)
    else:
        pushed = storage.push_model(model_dir, serving_root, name, client=storage_client)
        model_uri, previous = pushed.uri, pushed.previous_uri
        outcome = vertex.push(opts, model_uri, dry_run=False, credentials=credentials, timeout_s=timeout_s)
    requests = [dict(r, api_endpoint=outcome.api_endpoint) for r in outcome.requests]
    result = PushResult(
        outcome.endpoint_url, model_uri, outcome.previous_model_uri or previous,
        manifest={r["method"]: r["request"] for r in requests}, requests=requests,
        action="dry-run" if mode == "dry_run" else "deployed", traffic_percent=traffic_percent,
        vertex_model=outcome.model, vertex_endpoint=outcome.endpoint, vertex_api_endpoint=outcome.api_endpoint,
    )
    if output_dir is not None:
        with atomic_dir(output_dir) as scratch:
            (scratch / VERTEX_REQUESTS_FILE).write_text(json.dumps(redact_obj(requests), indent=2))
            (scratch / RESULT_FILE).write_text(json.dumps(redact_obj(dict(result.metadata(), model=outcome.model,
                                                                          endpoint=outcome.endpoint)), indent=2))
    return result
