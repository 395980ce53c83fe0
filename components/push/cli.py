"""``kfpc push kserve|vertex``: push a model folder from the command line (dry run by default).

Added to the ``kfpc`` parser through :func:`register`; heavy imports happen when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from kfpc.components._redact import redact, redact_obj


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="Model folder (1/saved_model.pb + model_card.json)")
    parser.add_argument("--serving-root", required=True, help="root of the versioned copies (gs://, s3://, path)")
    parser.add_argument("--name", required=True, help="model / service name")
    parser.add_argument("--not-blessed", action="store_true", help="the model is not blessed (refused unless --force)")
    parser.add_argument("--force", action="store_true", help="push even if not blessed")
    parser.add_argument("--output-dir", help="write the manifest / requests / summary here")


def _kserve(args: argparse.Namespace) -> int:
    from kfpc.components.push import core

    existing = None
    if args.existing:
        with open(args.existing) as handle:
            existing = json.load(handle)
    result = core.push_kserve(
        args.model_dir, serving_root=args.serving_root, name=args.name, namespace=args.namespace, mode=args.mode,
        blessed=not args.not_blessed, force=args.force, canary_traffic_percent=args.canary or None,
        promote=args.promote, deployment_mode=args.deployment_mode, predictor=args.predictor,
        image=args.image or core.images.SERVING, gpu=args.gpu, min_replicas=args.min_replicas,
        max_replicas=args.max_replicas, service_account=args.service_account, timeout_s=args.timeout,
        bake_s=args.bake, max_error_rate=args.max_error_rate, max_p99_latency_ms=args.max_p99_ms,
        min_requests=args.min_requests, prometheus_url=args.prometheus_url,
        prometheus_selector=args.prometheus_selector, canary_metrics_url=args.canary_metrics_url,
        output_dir=args.output_dir, existing_manifest=existing,
    )
    print(json.dumps(redact_obj(dict(result.metadata(), requests=len(result.requests))), indent=2))
    return 0


def _vertex(args: argparse.Namespace) -> int:
    from kfpc.components.push import core

    result = core.push_vertex(
        args.model_dir, serving_root=args.serving_root, name=args.name, project=args.project,
        location=args.location, mode=args.mode, blessed=not args.not_blessed, force=args.force,
        container=args.container, machine_type=args.machine_type, accelerator_type=args.accelerator_type,
        accelerator_count=args.accelerator_count, traffic_percent=args.traffic_percent, endpoint=args.endpoint,
        output_dir=args.output_dir,
    )
    print(json.dumps(redact_obj(dict(result.metadata(), requests=[r["method"] for r in result.requests])), indent=2))
    return 0


def _run(handler):
    def run(args: argparse.Namespace) -> int:
        from kfpc.components.push import core, kube, rollout, storage

        try:
            return handler(args)
        except core.NotBlessedError as err:
            print(f"kfpc push: {redact(err)}", file=sys.stderr)
            return 3
        except (ValueError, kube.KubeError, rollout.RolloutError, core.SmokeTestError, storage.StorageError) as err:
            print(f"kfpc push: {redact(err)}", file=sys.stderr)
            return 1

    return run


def register(subparsers) -> None:
    """Add ``push`` with ``kserve`` and ``vertex`` subcommands to the ``kfpc`` parser."""
    push = subparsers.add_parser("push", help="push a model to KServe or Vertex AI (dry run by default)")
    sub = push.add_subparsers(dest="push_target", metavar="TARGET", required=True)

    kserve = sub.add_parser("kserve", help="versioned copy + InferenceService rollout")
    _common(kserve)
    kserve.add_argument("--mode", choices=("dry_run", "local", "cluster"), default="dry_run")
    kserve.add_argument("--namespace", default="default")
    kserve.add_argument("--canary", type=int, default=0, metavar="PERCENT", help="canary traffic percent (1..99)")
    kserve.add_argument("--promote", action="store_true",
                        help="promote the canary once Ready and baked within the thresholds below")
    kserve.add_argument("--bake", type=float, default=300.0, metavar="SECONDS",
                        help="seconds the canary must serve within the thresholds before promotion (default 300)")
    kserve.add_argument("--max-error-rate", type=float, default=0.01, help="canary's highest 5xx share (default 0.01)")
    kserve.add_argument("--max-p99-ms", type=float, default=1000.0, help="canary's highest p99 latency, ms (default 1000)")
    kserve.add_argument("--min-requests", type=int, default=50, help="requests needed to judge the canary (default 50)")
    kserve.add_argument("--prometheus-url", default="", help="judge the canary through this Prometheus' query API")
    kserve.add_argument("--prometheus-selector", default="",
                        help="label matchers selecting the canary's series ({namespace}, {name}, {revision} filled in)")
    kserve.add_argument("--canary-metrics-url", default="", help="without Prometheus: the canary's /metrics URL")
    kserve.add_argument("--deployment-mode", default="Standard", help="Standard | Knative")
    kserve.add_argument("--predictor", choices=("kfpc", "tensorflow"), default="kfpc")
    kserve.add_argument("--image", default="", help="predictor image for kfpc (default: this release's)")
    kserve.add_argument("--gpu", type=int, default=0)
    kserve.add_argument("--min-replicas", type=int, default=1)
    kserve.add_argument("--max-replicas", type=int, default=3)
    kserve.add_argument("--service-account", default="")
    kserve.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for Ready per step")
    kserve.add_argument("--existing", help="dry run: the live InferenceService as JSON (kubectl get -o json)")
    kserve.set_defaults(func=_run(_kserve))

    vertex = sub.add_parser("vertex", help="Model Registry upload + endpoint deploy")
    _common(vertex)
    vertex.add_argument("--project", required=True)
    vertex.add_argument("--location", required=True)
    vertex.add_argument("--mode", choices=("dry_run", "cloud"), default="dry_run")
    vertex.add_argument("--container", choices=("kfpc", "tensorflow"), default="kfpc")
    vertex.add_argument("--machine-type", default="n1-standard-4")
    vertex.add_argument("--accelerator-type", default="")
    vertex.add_argument("--accelerator-count", type=int, default=0)
    vertex.add_argument("--traffic-percent", type=int, default=100)
    vertex.add_argument("--endpoint", default="")
    vertex.set_defaults(func=_run(_vertex))
