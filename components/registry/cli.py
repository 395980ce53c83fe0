"""``kfpc registry list|show|promote|rollback``: registered models, their lineage, promotion and rollback by name."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .._redact import redact_obj


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``registry`` subcommand (called by ``pipelines/cli.py``)."""
    parser = subparsers.add_parser(
        "registry", help="list, show, promote and roll back registered models (Kubeflow or Vertex AI registry)",
        description="Model registry commands. Promotion and rollback move the alias and, with --deploy, update "
                    "the InferenceService (or Vertex endpoint) in the same step: the alias moves only once "
                    "the deployment is live.")
    parser.add_argument("--backend", choices=("kubeflow", "vertex"),
                        default=os.environ.get("KFPC_REGISTRY_BACKEND", "kubeflow"),
                        help="registry backend (default $KFPC_REGISTRY_BACKEND or kubeflow)")
    parser.add_argument("--registry-uri", default=os.environ.get("KFPC_REGISTRY_URI", ""),
                        help="kubeflow: http(s)://host:port; vertex: projects/<p>/locations/<region> "
                             "(default $KFPC_REGISTRY_URI)")
    sub = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    lst = sub.add_parser("list", help="registered models, or the versions of one model")
    lst.add_argument("name", nargs="?", help="model name: list its versions")
    show = sub.add_parser("show", help="one version with its lineage")
    show.add_argument("name")
    show.add_argument("ref", nargs="?", default="champion", help="version or alias (default champion)")
    promote = sub.add_parser("promote", help="give a version an alias (champion: deploy it first)")
    promote.add_argument("name")
    promote.add_argument("ref", help="version or alias to promote")
    promote.add_argument("--alias", default="champion")
    rollback = sub.add_parser("rollback", help="give champion back to the previous champion and deploy it")
    rollback.add_argument("name")
    for p in (promote, rollback):
        p.add_argument("--deploy", choices=("none", "kserve", "vertex"), default="none",
                       help="also update the InferenceService (kserve) or endpoint (vertex) before moving the alias")
        p.add_argument("--namespace", default="default", help="kserve: namespace of the InferenceService")
        p.add_argument("--isvc", default="", help="kserve: InferenceService name (default: the model name)")
        p.add_argument("--kube-host", default="", help="kserve: API server URL (default: kubeconfig/in-cluster)")
        p.add_argument("--image", default="", help="kserve: predictor image (default: this release's)")
        p.add_argument("--deployment-mode", default="Standard", help="kserve: Standard or Knative")
        p.add_argument("--use-registry-uri", action="store_true",
                       help="kserve: write model-registry://name/version (cluster has that storage initializer); "
                            "default: the registered artifact URI, resolved here")
        p.add_argument("--endpoint", default="", help="vertex: endpoint to deploy to")
        p.add_argument("--timeout-s", type=float, default=600.0, help="seconds to wait for the deployment")
        p.add_argument("--poll-s", type=float, default=2.0, help="kserve: seconds between status reads")
    parser.set_defaults(func=run)


def _deployer(args: argparse.Namespace, registry):
    if args.deploy == "none":
        return None
    from . import deploy

    if args.deploy == "kserve":
        from .. import images
        from ..push import kube, manifest

        client = kube.IsvcClient.for_host(args.kube_host) if args.kube_host else kube.IsvcClient.from_environment()
        opts = manifest.ServingOptions(name=args.isvc or args.name, namespace=args.namespace,
                                       image=args.image or images.SERVING, deployment_mode=args.deployment_mode)
        return deploy.kserve_deployer(client, opts, use_registry_uri=args.use_registry_uri, timeout_s=args.timeout_s,
                                       poll_s=args.poll_s)
    from ..push import vertex as push_vertex

    if not args.endpoint:
        raise SystemExit("kfpc registry: --deploy vertex needs --endpoint")
    opts = push_vertex.VertexOptions(project=registry.project, location=registry.location, display_name=args.name)
    return deploy.vertex_deployer(push_vertex._clients(opts)[1], opts, args.endpoint, timeout_s=args.timeout_s)


def run(args: argparse.Namespace, registry=None) -> int:
    """Run one registry action; prints JSON. Returns the exit code (1 on a registry error)."""
    from . import core

    try:
        if registry is None:
            if not args.registry_uri:
                raise core.RegistryError("--registry-uri (or $KFPC_REGISTRY_URI) is required")
            registry = core.open_registry(args.backend, args.registry_uri)
        action = args.registry_command
        if action == "list" and not args.name:
            out: object = [{"model": m, "champion": (c.version if (c := registry.alias(m)) else "")}
                           for m in registry.models()]
        elif action == "list":
            out = [{"version": v.version, "uri": v.uri, "aliases": v.aliases, "rolled_back": v.rolled_back,
                    "run_id": (v.lineage.get("pipeline_run") or {}).get("id", ""),
                    "baseline_version": (v.lineage.get("baseline") or {}).get("version", "")}
                   for v in registry.versions(args.name)]
        elif action == "show":
            out = registry.get(args.name, args.ref).summary()
        elif action == "promote":
            out = core.promote(registry, args.name, args.ref, alias=args.alias,
                               deploy=_deployer(args, registry) if args.alias == core.CHAMPION else None).summary()
        else:
            out = core.rollback(registry, args.name, deploy=_deployer(args, registry)).summary()
    except core.RegistryError as err:
        print(f"kfpc registry: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a deployment failure (rollout, API refusal): the alias did not move
        if type(err).__module__.startswith("kfpc."):
            print(f"kfpc registry: error: {type(err).__name__}: {err} (the alias was not moved)", file=sys.stderr)
            return 1
        raise
    print(json.dumps(redact_obj(out), indent=2, default=str))
    return 0
