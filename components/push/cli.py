"""``kfpc push kserve|vertex``: push a model folder from the command line (dry run by default).

Added to the ``kfpc`` parser through :func:`register`; heavy imports happen when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from kfpc.components._redact import redact, redact_obj
from kfpc.components.push import options


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
        args.model_dir, serving_root=args.serving_root, name=args.name, blessed=not args.not_blessed,
        force=args.force, output_dir=args.output_dir, existing_manifest=existing, **options.values(args, options.KSERVE),
    )
    print(json.dumps(redact_obj(dict(result.metadata(), requests=len(result.requests))), indent=2))
    return 0


def _vertex(args: argparse.Namespace) -> int:
    from kfpc.components.push import core

    result = core.push_vertex(
        args.model_dir, serving_root=args.serving_root, name=args.name, project=args.project,
        location=args.location, blessed=not args.not_blessed, force=args.force, output_dir=args.output_dir,
        **options.values(args, options.VERTEX),
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
    options.add_arguments(kserve, options.KSERVE)
    kserve.add_argument("--existing", help="dry run: the live InferenceService as JSON (kubectl get -o json)")
    kserve.set_defaults(func=_run(_kserve))

    vertex = sub.add_parser("vertex", help="Model Registry upload + endpoint deploy")
    _common(vertex)
    vertex.add_argument("--project", required=True)
    # --region as in kfpc submit/schedule; --location (the SDK's word) is accepted too
    vertex.add_argument("--region", "--location", dest="location", required=True,
                        help="Vertex AI region, e.g. us-central1")
    options.add_arguments(vertex, options.VERTEX)
    vertex.set_defaults(func=_run(_vertex))
