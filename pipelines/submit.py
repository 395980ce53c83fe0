"""``kfpc submit``: start a pipeline run on Kubeflow Pipelines or Vertex AI Pipelines.

KFP (default)::

    kfpc submit --host https://kfp.example.com --namespace team-a --experiment churn \\
        --pipeline training_pipeline --param source_uri=gs://bucket/data.csv \\
        --param serving_root=gs://bucket/models --wait

Vertex AI::

    kfpc submit --vertex --project my-project --region europe-west4 --pipeline-root gs://bucket/root \\
        --package pipelines/compiled/vertex/training_pipeline.yaml --params-file params.yaml

where ``params.yaml`` holds the pipeline's parameters (required ones at least)::

    serving_root: gs://bucket/models
    source_uri: gs://bucket/data.csv

``--dry-run`` prints the exact request (built by ``kfp_server_api`` / ``aiplatform``) and sends nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from kfpc.pipelines import remote
from kfpc.pipelines.remote import SubmitError

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2


# --------------------------------------------------------------------------- shared argument groups


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """``--package``/``--pipeline``, parameters and caching: shared by ``submit`` and ``schedule create``."""
    what = parser.add_argument_group("pipeline")
    what.add_argument("--package", metavar="FILE", help="compiled pipeline YAML (e.g. pipelines/compiled/kfp/...)")
    what.add_argument("--pipeline", metavar="NAME", help="a kfpc pipeline, compiled on the fly for the target")
    what.add_argument("--param", action="append", metavar="KEY=VALUE",
                      help="pipeline parameter, typed as the pipeline declares it (repeatable; wins over the file)")
    what.add_argument("--params-file", metavar="FILE", help="JSON or YAML mapping of parameters")
    what.add_argument("--pipeline-root", metavar="URI",
                      help="artifact root (required for Vertex AI: gs://...; KFP default: the deployment's)")
    what.add_argument("--enable-caching", action=argparse.BooleanOptionalAction, default=None,
                      help="override every task's cache setting (default: as compiled)")
    what.add_argument("--service-account", metavar="SA",
                      help="KFP: Kubernetes service account of the pods; Vertex: the run-as service account e-mail")
    what.add_argument("--dry-run", action="store_true", help="print the exact request and send nothing")


def add_target_arguments(parser: argparse.ArgumentParser, job_options: bool = True) -> None:
    """Where to send: KFP endpoint and credentials, or Vertex AI project and region.

    Args:
        parser: the subcommand's parser.
        job_options: also add the options of a Vertex job (network, labels, encryption key).
    """
    kfp_group = parser.add_argument_group("Kubeflow Pipelines (default target)")
    kfp_group.add_argument("--host", metavar="URL",
                           help="KFP endpoint, e.g. https://kubeflow.example.com/pipeline or http://localhost:8080 "
                                "(default: KF_PIPELINES_ENDPOINT, the in-cluster service, or the kube config)")
    kfp_group.add_argument("--namespace", help="Kubernetes namespace / Kubeflow profile (multi-user deployments)")
    kfp_group.add_argument("--token", help="bearer token (default: KFPC_KFP_TOKEN, then the in-cluster "
                                           "service-account token)")
    kfp_group.add_argument("--kube-context", help="kube config context, when no --host is given")
    kfp_group.add_argument("--credentials", choices=remote.CREDENTIALS, default="auto",
                           help="how to authenticate (default auto: --token/KFPC_KFP_TOKEN, else the projected "
                                "service-account token, else the kube config)")
    kfp_group.add_argument("--cookies", help="--credentials cookies: a Dex/oauth2-proxy session, "
                                             "e.g. 'authservice_session=...'")
    kfp_group.add_argument("--iap-client-id", help="--credentials iap: the OAuth client ID of the IAP in front of KFP")
    kfp_group.add_argument("--ssl-ca-cert", metavar="FILE", help="CA bundle for a private TLS endpoint")
    vertex = parser.add_argument_group("Vertex AI")
    vertex.add_argument("--vertex", action="store_true", help="send to Vertex AI Pipelines instead of KFP")
    vertex.add_argument("--project", help="Google Cloud project")
    vertex.add_argument("--region", help="Vertex AI region, e.g. us-central1")
    if job_options:
        vertex.add_argument("--network", help="VPC to peer: projects/<number>/global/networks/<name>")
        vertex.add_argument("--labels", action="append", metavar="K=V[,K=V]", help="labels on the job (repeatable)")
        vertex.add_argument("--encryption-key", metavar="KMS_KEY", help="customer-managed encryption key name")


def load_pipeline(args: argparse.Namespace, workdir: str) -> tuple[remote.PipelinePackage, dict]:
    """The package and typed parameters named by the pipeline arguments."""
    target = "vertex" if args.vertex else "kfp"
    path = remote.resolve_package(args.package, args.pipeline, target, workdir)
    package = remote.load_package(path)
    return package, remote.parse_params(args.param, args.params_file, package)


def anonymous_credentials_if(dry_run: bool):
    """Dry-runs construct the Vertex objects with anonymous credentials: no credential lookup, no network."""
    if not dry_run:
        return None
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def check_vertex_package(package: remote.PipelinePackage) -> None:
    """Refuse a YAML compiled for KFP: its ``platforms: kubernetes`` document (GPU node selectors) is not
    something Vertex AI reads, and aiplatform fails on it with a bare YAML error."""
    if package.platform_spec:
        raise SubmitError(
            f"--package {package.path}: compiled for Kubeflow Pipelines (it has a platform document: "
            f"{', '.join(sorted(package.platform_spec.get('platforms', package.platform_spec)))}); for Vertex AI use "
            f"the Vertex compile: kfpc compile --target vertex, or --pipeline NAME"
        )


def vertex_job(args: argparse.Namespace, package: remote.PipelinePackage, params: dict, display_name: str):
    """The ``aiplatform.PipelineJob`` the arguments describe (offline)."""
    if not args.pipeline_root:
        raise SubmitError("--vertex needs --pipeline-root gs://BUCKET/PATH (where the run's artifacts go)")
    return remote.vertex_pipeline_job(
        package.path, args.project, args.region, args.pipeline_root, params, display_name,
        job_id=getattr(args, "job_id", None), labels=remote.parse_labels(args.labels),
        enable_caching=args.enable_caching, encryption_key=args.encryption_key,
        credentials=anonymous_credentials_if(args.dry_run),
    )


def fail(command: str, err: Exception) -> int:
    """Print a bad-input error the way every kfpc command does and return its exit code."""
    from kfpc.components._redact import redact

    print(f"kfpc {command}: {redact(err)}", file=sys.stderr)
    return EXIT_BAD_INPUT


# --------------------------------------------------------------------------- following a run


def follow_kfp_run(client, run_id: str, timeout: float, poll_seconds: float, out=None) -> str:
    """Print task state changes of a KFP run until it ends; return its final state.

    Args:
        client: a ``kfp.Client``.
        run_id: the run.
        timeout: seconds to wait at most.
        poll_seconds: pause between polls.
        out: where to print.
    Returns:
        The run's final state (``SUCCEEDED``, ``FAILED``, ``SKIPPED``, ``CANCELED``).
    Raises:
        TimeoutError: the run did not end in time.
    """
    out = out or sys.stdout
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    last_run_state = None
    while True:
        run = client.get_run(run_id)
        details = run.run_details.task_details if run.run_details and run.run_details.task_details else []
        for task in details:
            key = task.task_id or task.display_name
            if task.display_name and task.state and seen.get(key) != task.state:
                seen[key] = task.state
                print(f"{_now()} task {task.display_name}: {task.state}", file=out, flush=True)
        if run.state != last_run_state:
            last_run_state = run.state
            print(f"{_now()} run {run_id}: {run.state}", file=out, flush=True)
        if run.state in remote.KFP_RUN_TERMINAL_STATES:
            return run.state
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run.state} after {timeout:.0f} s")
        time.sleep(poll_seconds)


def follow_vertex_job(job, timeout: float, poll_seconds: float, out=None) -> str:
    """Print task state changes of a Vertex AI pipeline job until it ends; return its final state name."""
    out = out or sys.stdout
    from google.cloud import aiplatform

    terminal = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    last = None
    while True:
        current = aiplatform.PipelineJob.get(job.resource_name, credentials=job.credentials)
        for task in current.task_details:
            state = task.state.name
            if seen.get(task.task_name) != state:
                seen[task.task_name] = state
                print(f"{_now()} task {task.task_name}: {state}", file=out, flush=True)
        state = current.state.name
        if state != last:
            last = state
            print(f"{_now()} job {current.name}: {state}", file=out, flush=True)
        if state in terminal:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {current.name} still {state} after {timeout:.0f} s")
        time.sleep(poll_seconds)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%H:%M:%S")


# --------------------------------------------------------------------------- the command


def _default_run_name(package: remote.PipelinePackage) -> str:
    return f"{package.name} {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H-%M-%S')}"


def submit_kfp(args: argparse.Namespace, package: remote.PipelinePackage, params: dict, out=None) -> int:
    """Create a KFP run (or print its request). Returns the exit code."""
    out = out or sys.stdout
    run_name = args.run_name or _default_run_name(package)
    body = remote.kfp_run_body(
        package, params, run_name, pipeline_root=args.pipeline_root, enable_caching=args.enable_caching,
        service_account=args.service_account, description=args.description,
    )
    experiment = args.experiment or "Default"
    if args.dry_run:
        apis, log = remote.kfp_dry_run_apis(args.host, args.token)
        apis.runs.run_service_create_run(run=body)
        print(remote.dry_run_document("kfp", [r.to_dict() for r in log], notes=[
            f"experiment_id is filled in at submission: the id of experiment {experiment!r}"
            + (f" in namespace {args.namespace!r}" if args.namespace else "")
            + " (created if it does not exist)",
        ]), file=out)
        return EXIT_OK
    client = remote.kfp_client_from_args(args)
    body.experiment_id = client.create_experiment(name=experiment, namespace=args.namespace).experiment_id
    run = client.runs.run_service_create_run(run=body)
    print(f"run_id: {run.run_id}", file=out)
    print(f"url: {remote.kfp_run_url(args.host, run.run_id)}", file=out, flush=True)
    if not args.wait:
        return EXIT_OK
    state = follow_kfp_run(client, run.run_id, args.timeout, args.poll_interval, out)
    return EXIT_OK if state == "SUCCEEDED" else EXIT_RUN_FAILED


def submit_vertex(args: argparse.Namespace, package: remote.PipelinePackage, params: dict, out=None) -> int:
    """Create a Vertex AI pipeline job (or print its request). Returns the exit code."""
    out = out or sys.stdout
    check_vertex_package(package)
    job = vertex_job(args, package, params, args.run_name or package.name)
    request = remote.vertex_create_job_request(job, args.service_account, args.network)
    if args.dry_run:
        notes = [f"sent to {remote.vertex_endpoint(args.region)} by aiplatform.PipelineJob.submit()"]
        if args.experiment:
            notes.append(f"the job is then associated with Vertex AI experiment {args.experiment!r}")
        print(remote.dry_run_document("vertex", [{
            "rpc": "google.cloud.aiplatform.v1.PipelineService.CreatePipelineJob",
            "endpoint": remote.vertex_endpoint(args.region),
            "request": remote.proto_to_dict(request),
        }], notes), file=out)
        return EXIT_OK
    job.submit(service_account=args.service_account, network=args.network, experiment=args.experiment)
    print(f"job: {job.resource_name}", file=out)
    print(f"url: {remote.vertex_dashboard_url(args.project, args.region, 'runs', job.job_id)}", file=out, flush=True)
    if not args.wait:
        return EXIT_OK
    state = follow_vertex_job(job, args.timeout, args.poll_interval, out)
    return EXIT_OK if state == "PIPELINE_STATE_SUCCEEDED" else EXIT_RUN_FAILED


def run_submit(args: argparse.Namespace) -> int:
    """``kfpc submit``: returns the exit code (0 ok, 1 the run failed, 2 bad input)."""
    from kfpc.pipelines import cron

    try:
        with remote.scratch_dir() as workdir:
            package, params = load_pipeline(args, workdir)
            if args.vertex:
                return submit_vertex(args, package, params)
            return submit_kfp(args, package, params)
    except (SubmitError, cron.CronError) as err:
        return fail("submit", err)
    except TimeoutError as err:
        from kfpc.components._redact import redact

        print(f"kfpc submit: {redact(err)}", file=sys.stderr)
        return EXIT_RUN_FAILED


def register(subparsers) -> None:
    """Add ``submit`` to the ``kfpc`` command line."""
    parser = subparsers.add_parser(
        "submit", help="start a pipeline run on Kubeflow Pipelines or Vertex AI",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pipeline_arguments(parser)
    add_target_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--run-name", help="display name (default: '<pipeline> <UTC time>')")
    run.add_argument("--description", help="KFP: description of the run")
    run.add_argument("--experiment", help="KFP experiment (default 'Default', created if missing); "
                                          "Vertex: the Vertex AI experiment to associate")
    run.add_argument("--job-id", help="Vertex: the job ID (default '<pipeline>-<timestamp>')")
    run.add_argument("--wait", action="store_true", help="follow task states until the run ends; exit 1 unless "
                                                         "it succeeded")
    run.add_argument("--timeout", type=float, default=24 * 3600, help="seconds --wait waits (default 86400)")
    run.add_argument("--poll-interval", type=float, default=10.0, help="seconds between --wait polls")
    parser.set_defaults(func=run_submit)


def main(argv: list[str] | None = None) -> int:
    """Run ``submit`` alone (``python -m kfpc.pipelines.submit ...``)."""
    parser = argparse.ArgumentParser(prog="kfpc")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["submit", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

