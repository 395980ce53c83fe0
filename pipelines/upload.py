"""``kfpc upload``: register a compiled pipeline in Kubeflow Pipelines, as a new pipeline or a new version.

Upload the training pipeline compiled for images in your registry::

    kfpc upload --host https://kfp.example.com --namespace team-a --pipeline training_pipeline \
        --name churn-training --version-name v0.3-rc1

A pipeline of that name that exists already gets a new version; otherwise the pipeline is created (KFP
makes its first version from the same package). The UI then lists it under Pipelines, where runs start
from the latest version. ``--dry-run`` prints the requests ``kfp.Client`` would send and sends nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from kfpc.pipelines import remote, submit
from kfpc.pipelines.remote import SubmitError


def _version_name(package: remote.PipelinePackage) -> str:
    from kfpc.components import __version__

    return f"{package.name} kfpc {__version__} {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H-%M-%S')}"


def upload(args: argparse.Namespace, out=None) -> int:
    """Create the pipeline, or a new version of it (or print the requests). Returns the exit code."""
    out = out or sys.stdout
    if getattr(args, "vertex", False):
        raise SubmitError("kfpc upload registers pipelines in Kubeflow Pipelines; for Vertex AI, submit or "
                          "schedule the compiled package directly (kfpc submit --vertex / kfpc schedule create --vertex)")
    with remote.scratch_dir() as workdir:
        path = remote.resolve_package(args.package, args.pipeline, "kfp", workdir)
        package = remote.load_package(path)
        name = args.name or package.name
        version = args.version_name or _version_name(package)
        if args.dry_run:
            apis, log = remote.kfp_dry_run_apis(args.host, args.token)
            apis.pipelines.pipeline_service_list_pipelines(
                namespace=args.namespace, filter=_name_filter(name), page_size=1)
            apis.uploads.upload_pipeline_version(
                uploadfile=str(path), name=version, pipelineid=f"<id of pipeline {name}>",
                description=args.description)
            apis.uploads.upload_pipeline(uploadfile=str(path), name=name, description=args.description,
                                         namespace=args.namespace)
            print(remote.dry_run_document("kfp", [r.to_dict() for r in log], notes=[
                f"the first request finds pipeline {name!r}; when it exists the second adds version {version!r} "
                f"to it, otherwise the third creates it (KFP makes its first version from the same package)",
            ]), file=out)
            return submit.EXIT_OK
        client = remote.kfp_client_from_args(args)
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:
            created = client.upload_pipeline(str(path), pipeline_name=name, description=args.description,
                                             namespace=args.namespace)
            pipeline_id = created.pipeline_id
            print(f"pipeline created: {name} ({pipeline_id})", file=out)
        else:
            created = client.upload_pipeline_version(str(path), pipeline_version_name=version,
                                                     pipeline_id=pipeline_id, description=args.description)
            print(f"pipeline version added: {name} / {version} ({created.pipeline_version_id})", file=out)
        print(f"url: {remote.kfp_pipeline_url(args.host, pipeline_id)}", file=out)
    return submit.EXIT_OK


def _name_filter(name: str) -> str:
    import json

    return json.dumps({"predicates": [{"key": "name", "operation": "EQUALS", "string_value": name}]})


def run_upload(args: argparse.Namespace) -> int:
    """The ``upload`` command: exit 0 on success, 1 when KFP refused, 2 for bad input."""
    try:
        return upload(args)
    except SubmitError as err:
        print(f"kfpc upload: {err}", file=sys.stderr)
        return submit.EXIT_BAD_INPUT
    except Exception as err:  # a refusal of the API server (auth, conflict): one line, credentials redacted
        return submit.fail("upload", err)


def register(subparsers) -> None:
    """Add ``upload`` to the ``kfpc`` command line."""
    parser = subparsers.add_parser(
        "upload", help="register a compiled pipeline (or a new version of it) in Kubeflow Pipelines",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("pipeline")
    what.add_argument("--package", metavar="FILE", help="compiled pipeline YAML (e.g. pipelines/compiled/kfp/...)")
    what.add_argument("--pipeline", metavar="NAME", help="a kfpc pipeline, compiled on the fly")
    what.add_argument("--name", help="the pipeline's name in KFP (default: the compiled pipeline's name)")
    what.add_argument("--version-name", help="name of the new version (default: '<pipeline> kfpc <version> <UTC time>')")
    what.add_argument("--description", help="description of the pipeline / version")
    what.add_argument("--dry-run", action="store_true", help="print the exact requests and send nothing")
    submit.add_target_arguments(parser, job_options=False)
    parser.set_defaults(func=run_upload)
