"""``monitoring_pipeline``: the served traffic of a window vs training, and retraining when it moved.

1. The served model and its training statistics (and optionally the production schema) are imported by URI.
2. ``monitor_window`` reads the payload logs of ``[window_end - window_seconds, window_end)`` (and the window
   before it), computes their statistics with the statistics engine and validates them with the validation
   engine: skew vs training, drift vs the previous window. Report (Markdown, HTML) and Metrics.
3. ``trigger_retraining`` submits ``retraining_pipeline`` when drift is confirmed and ``trigger`` is on,
   recording why; ``trigger_mode=dry_run`` writes the exact KFP ``CreateRun`` request instead of sending it.

Schedule it like the retraining pipeline (``kfpc schedule create --pipeline monitoring_pipeline --cron ...``):
``window_end`` empty means "now", so a recurring run needs no edits.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from kfpc.components import images

DESCRIPTION = (
    "Monitoring: payload logs of a window -> statistics -> skew vs training and drift vs the previous window -> "
    "report and metrics -> optionally submit retraining_pipeline when drift is confirmed."
)

#: local runs (``kfpc run monitoring_pipeline``) read what ``kfpc serve --payload_log`` writes by default
LOCAL_DEFAULTS: dict = {}


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def trigger_retraining(
    window: Input[Artifact],
    submission: Output[Artifact],
    drift_confirmed: bool,
    reason: str,
    trigger: bool = False,
    trigger_mode: str = "dry_run",
    retraining_parameters: dict = {},  # noqa: B006 (KFP reads the default from the signature)
    kfp_host: str = "",
    experiment: str = "",
    run_name: str = "",
) -> NamedTuple("Outputs", submitted=bool):
    """Submit ``retraining_pipeline`` when drift is confirmed (and ``trigger`` is on), recording why.

    Args:
        window: monitor_window's output (its verdict is copied into the record).
        submission: folder: ``decision.json`` (submitted or not, and why), and ``request.json`` (dry_run: the
            exact KFP request) or ``run.json`` (kfp: the created run's id).
        drift_confirmed / reason: monitor_window's verdict.
        trigger: submit at all (off: the decision is recorded, nothing is submitted).
        trigger_mode: ``dry_run`` (write the request) or ``kfp`` (create the run on ``kfp_host``).
        retraining_parameters: parameters of retraining_pipeline (checked against its compiled signature).
        kfp_host: the KFP API endpoint; empty: in-cluster.
        experiment: KFP experiment of the run (default ``Default``).
        run_name: display name; empty: ``retraining_pipeline (drift <time>)``.
    Returns:
        submitted.
    """
    import datetime as dt
    import json
    import os
    import subprocess
    import sys
    import tempfile

    from kfpc.pipelines import remote

    if trigger_mode not in ("dry_run", "kfp"):
        raise ValueError(f"trigger_mode must be 'dry_run' or 'kfp', got {trigger_mode!r}")
    os.makedirs(submission.path, exist_ok=True)
    verdict_path = os.path.join(window.path, "verdict.json")
    verdict = json.load(open(verdict_path, encoding="utf-8")) if os.path.exists(verdict_path) else {}
    decision = {"drift_confirmed": bool(drift_confirmed), "reason": reason, "trigger": trigger,
                "trigger_mode": trigger_mode, "window": {k: verdict.get(k) for k in (
                    "window_start", "window_end", "rows", "skew_features", "drift_features")}}
    submitted = False
    if drift_confirmed and trigger:
        with tempfile.TemporaryDirectory(prefix="kfpc-trigger-") as scratch:
            # inside a task kfp.dsl is its runtime-only half (_KFP_RUNTIME=true) and the compiler cannot load:
            # compile in a fresh interpreter without that flag (it keeps KFPC_IMAGE_REGISTRY)
            path = os.path.join(scratch, "retraining_pipeline.yaml")
            call = {"kind": "pipeline", "name": "retraining_pipeline", "target": "kfp", "output": path, "options": {}}
            env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
            compiled = subprocess.run([sys.executable, "-m", "kfpc.pipelines.compiler", json.dumps(call)],
                                      capture_output=True, text=True, cwd=scratch, env=env)
            if compiled.returncode != 0:
                raise RuntimeError(f"compiling retraining_pipeline failed:\n{compiled.stderr[-2000:]}")
            package = remote.load_package(path)
            params_file = os.path.join(scratch, "params.json")
            with open(params_file, "w", encoding="utf-8") as handle:
                json.dump(dict(retraining_parameters), handle)
            params = remote.parse_params(None, params_file, package)
        name = run_name or f"retraining_pipeline (drift {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H-%M-%S')})"
        description = f"Submitted by monitoring_pipeline: {reason}"[:1000]
        body = remote.kfp_run_body(package, params, name, description=description)
        if trigger_mode == "dry_run":
            apis, log = remote.kfp_dry_run_apis(kfp_host or None)
            apis.runs.run_service_create_run(run=body)
            document = json.loads(remote.dry_run_document("kfp", [r.to_dict() for r in log], notes=[
                f"experiment_id is filled in at submission: the id of experiment {experiment or 'Default'!r}",
                f"reason: {reason}"]))
            with open(os.path.join(submission.path, "request.json"), "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
        else:
            client = remote.kfp_client(kfp_host or None)
            body.experiment_id = client.create_experiment(name=experiment or "Default").experiment_id
            run = client.runs.run_service_create_run(run=body)
            with open(os.path.join(submission.path, "run.json"), "w", encoding="utf-8") as handle:
                json.dump({"run_id": run.run_id, "url": remote.kfp_run_url(kfp_host or None, run.run_id)}, handle)
        submitted = True
        decision["run_name"] = name
    decision["submitted"] = submitted
    with open(os.path.join(submission.path, "decision.json"), "w", encoding="utf-8") as handle:
        json.dump(decision, handle, indent=2)
    submission.metadata.update({"submitted": submitted, "reason": reason, "trigger_mode": trigger_mode})
    return (submitted,)


def build_monitoring_pipeline(target: str = "kfp"):
    """Build ``monitoring_pipeline`` (the same for ``kfp`` and ``vertex``: no GPU step).

    Returns:
        The ``@dsl.pipeline`` function.
    """
    from kfpc.components.monitor.component import monitor_window

    @dsl.pipeline(name="monitoring-pipeline", description=DESCRIPTION)
    def monitoring_pipeline(
        payload_uri: str,
        model_uri: str,
        training_statistics_uri: str,
        schema_uri: str = "",
        training_split: str = "train",
        window_end: str = "",
        window_seconds: float = 86400.0,
        min_rows: int = 200,
        min_drifted_features: int = 1,
        trigger: bool = False,
        trigger_mode: str = "dry_run",
        retraining_parameters: dict = {},  # noqa: B006
        kfp_host: str = "",
        experiment: str = "",
    ):
        """Judge a window of served traffic and retrain when it moved.

        Args:
            payload_uri: the model server's payload log file or folder (local, gs://, s3://).
            model_uri: the served Model artifact (e.g. push's model_uri).
            training_statistics_uri: the statistics artifact the model was trained on.
            schema_uri: the production schema.pbtxt; empty: inferred from the training statistics.
            training_split: split of the training statistics.
            window_end: ISO-8601 end of the window; empty: the run's start.
            window_seconds: window length (default a day); the previous window is the one before.
            min_rows: rows a window needs for a verdict.
            min_drifted_features: features shifted vs training that confirm drift.
            trigger: submit retraining_pipeline when drift is confirmed.
            trigger_mode: ``dry_run`` (write the request) or ``kfp``.
            retraining_parameters: retraining_pipeline's parameters (source_pattern, schema_uri, label, ...).
            kfp_host: KFP endpoint for the submission; empty: in-cluster.
            experiment: KFP experiment of the retraining run.
        """
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=True)
        model.set_display_name("served-model")
        stats = dsl.importer(artifact_uri=training_statistics_uri, artifact_class=dsl.Artifact, reimport=True)
        stats.set_display_name("training-statistics")
        checked = monitor_window(
            model=model.output, training_statistics=stats.output, payload_uri=payload_uri, schema_uri=schema_uri,
            training_split=training_split, window_end=window_end, window_seconds=window_seconds,
            min_rows=min_rows, min_drifted_features=min_drifted_features,
        ).set_caching_options(False)  # the logs grow and "now" moves between runs with the same inputs
        trigger_retraining(
            window=checked.outputs["window"], drift_confirmed=checked.outputs["drift_confirmed"],
            reason=checked.outputs["reason"], trigger=trigger, trigger_mode=trigger_mode,
            retraining_parameters=retraining_parameters, kfp_host=kfp_host, experiment=experiment,
        ).set_caching_options(False)

    return monitoring_pipeline
