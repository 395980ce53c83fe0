"""``kfpc schedule create|list|pause|resume|delete``: recurring pipeline runs on KFP or Vertex AI.

KFP recurring run, daily at 02:00 UTC (6-field cron, seconds first)::

    kfpc schedule create --host https://kfp.example.com --namespace team-a --name nightly-retrain \\
        --pipeline retraining_pipeline --cron "0 0 2 * * *" --params-file retrain.yaml

Vertex AI schedule, 02:00 Berlin time (5-field cron, optional TZ= prefix)::

    kfpc schedule create --vertex --project my-project --region europe-west4 --pipeline-root gs://b/root \\
        --name nightly-retrain --pipeline retraining_pipeline --cron "TZ=Europe/Berlin 0 2 * * *" \\
        --param source_pattern=gs://b/churn/span-{SPAN}/data.csv --param schema_uri=gs://b/schema.pbtxt \\
        --param label=churned --param serving_root=gs://b/models --param model_name=churn

where ``retrain.yaml`` holds the retraining pipeline's required parameters::

    source_pattern: gs://b/churn/span-{SPAN}/data.csv
    schema_uri: gs://b/schema.pbtxt
    label: churned
    serving_root: gs://b/models
    model_name: churn

The cron is checked for the target before anything is sent; a 5-field cron given to KFP (which would
fire every hour) or a 6-field one given to Vertex AI is refused with the expression to use instead.
``--dry-run`` prints the exact request and the next fire times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from kfpc.pipelines import cron, remote, submit
from kfpc.pipelines.remote import SubmitError

_VERTEX_SCHEDULE_RPC = "google.cloud.aiplatform.v1.ScheduleService."


def _vertex_dry_run(method: str, request, region: str, notes: list[str] | None = None) -> str:
    return remote.dry_run_document("vertex", [{
        "rpc": _VERTEX_SCHEDULE_RPC + method,
        "endpoint": remote.vertex_endpoint(region),
        "request": remote.proto_to_dict(request),
    }], notes)


def _next_times_note(spec: cron.CronSpec | None, interval: int | None, start: dt.datetime | None) -> str:
    after = max(start or dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC))
    if spec is None:
        return f"runs every {interval} s from {after.isoformat(timespec='seconds')} (the first run starts then)"
    times = [t.isoformat() for t in spec.next_fire_times(after, 3)]
    return "next runs: " + ", ".join(times)


def _interval_as_vertex_cron(seconds: int) -> str | None:
    """A 5-field cron equal to an interval, where one exists (whole minutes dividing an hour, hours a day)."""
    if seconds % 86400 == 0 and seconds == 86400:
        return "0 0 * * *"
    if seconds % 3600 == 0 and 24 % (seconds // 3600) == 0:
        return f"0 */{seconds // 3600} * * *" if seconds > 3600 else "0 * * * *"
    if seconds % 60 == 0 and 60 % (seconds // 60) == 0:
        return f"*/{seconds // 60} * * * *" if seconds > 60 else "* * * * *"
    return None


# --------------------------------------------------------------------------- create


def create_kfp(args, package: remote.PipelinePackage, params: dict, out=None) -> int:
    """Create a KFP recurring run (or print its request)."""
    out = out or sys.stdout
    spec = cron.validate_cron(args.cron, cron.KFP) if args.cron else None
    interval = cron.parse_interval(args.interval) if args.interval else None
    start, end = remote.parse_time(args.start_time, "--start-time"), remote.parse_time(args.end_time, "--end-time")
    trigger = remote.kfp_trigger(spec, interval, start, end)
    body = remote.kfp_recurring_run_body(
        package, params, args.name, trigger, max_concurrency=args.max_concurrency, catchup=args.catchup,
        enabled=not args.paused, pipeline_root=args.pipeline_root, enable_caching=args.enable_caching,
        service_account=args.service_account, description=args.description,
    )
    experiment = args.experiment or "Default"
    if args.dry_run:
        apis, log = remote.kfp_dry_run_apis(args.host, args.token)
        apis.recurring_runs.recurring_run_service_create_recurring_run(recurring_run=body)
        notes = [
            f"experiment_id is filled in at submission: the id of experiment {experiment!r}"
            + (f" in namespace {args.namespace!r}" if args.namespace else "") + " (created if it does not exist)",
            _next_times_note(spec, interval, start) + " (UTC)",
        ]
        print(remote.dry_run_document("kfp", [r.to_dict() for r in log], notes), file=out)
        return submit.EXIT_OK
    client = remote.kfp_client_from_args(args)
    body.experiment_id = client.create_experiment(name=experiment, namespace=args.namespace).experiment_id
    created = client.recurring_runs.recurring_run_service_create_recurring_run(recurring_run=body)
    print(f"recurring_run_id: {created.recurring_run_id}", file=out)
    print(f"url: {remote.kfp_recurring_run_url(args.host, created.recurring_run_id)}", file=out)
    print(_next_times_note(spec, interval, start) + " (UTC)", file=out)
    return submit.EXIT_OK


def create_vertex(args, package: remote.PipelinePackage, params: dict, out=None) -> int:
    """Create a Vertex AI pipeline schedule (or print its request)."""
    out = out or sys.stdout
    if args.interval:
        seconds = cron.parse_interval(args.interval)
        equivalent = _interval_as_vertex_cron(seconds)
        fix = f": use --cron {equivalent!r}" if equivalent else ": use --cron"
        raise SubmitError(f"--interval {args.interval!r}: Vertex AI schedules are cron-only{fix}")
    if not args.cron:
        raise SubmitError("give --cron (Vertex AI: 5 fields, e.g. 'TZ=Europe/Berlin 0 2 * * *')")
    spec = cron.validate_cron(args.cron, cron.VERTEX)
    submit.check_vertex_package(package)
    start, end = remote.parse_time(args.start_time, "--start-time"), remote.parse_time(args.end_time, "--end-time")
    job = submit.vertex_job(args, package, params, args.name)
    request = remote.vertex_create_schedule_request(
        job, args.name, spec, start, end, max_concurrent_run_count=args.max_concurrency,
        max_run_count=args.max_run_count, allow_queueing=args.allow_queueing,
        service_account=args.service_account, network=args.network,
    )
    zone = spec.timezone or "UTC"
    if args.dry_run:
        notes = [_next_times_note(spec, None, start) + f" ({zone})"]
        if args.paused:
            notes.append("then paused at once (PauseSchedule): Vertex AI creates schedules active")
        print(_vertex_dry_run("CreateSchedule", request, args.region, notes), file=out)
        return submit.EXIT_OK
    client = remote.vertex_schedule_client(args.project, args.region)
    created = client.create_schedule(request=request)
    if args.paused:
        from google.cloud.aiplatform.compat.types import schedule_service

        client.pause_schedule(request=schedule_service.PauseScheduleRequest(name=created.name))
    print(f"schedule: {created.name}", file=out)
    schedule_id = created.name.rsplit("/", 1)[-1]
    print(f"url: {remote.vertex_dashboard_url(args.project, args.region, 'schedules', schedule_id)}", file=out)
    print(_next_times_note(spec, None, start) + f" ({zone})", file=out)
    return submit.EXIT_OK


def run_create(args: argparse.Namespace) -> int:
    """``kfpc schedule create``."""
    try:
        if bool(args.cron) == bool(args.interval):
            raise SubmitError("give exactly one of --cron or --interval")
        with remote.scratch_dir() as workdir:
            package, params = submit.load_pipeline(args, workdir)
            if args.vertex:
                return create_vertex(args, package, params)
            return create_kfp(args, package, params)
    except (SubmitError, cron.CronError) as err:
        return submit.fail("schedule create", err)


# --------------------------------------------------------------------------- list / pause / resume / delete


def _format_kfp_trigger(trigger) -> str:
    if trigger is None:
        return "-"
    if trigger.cron_schedule is not None:
        return f"cron {trigger.cron_schedule.cron!r}"
    if trigger.periodic_schedule is not None:
        return f"every {trigger.periodic_schedule.interval_second} s"
    return "-"


def run_list(args: argparse.Namespace, out=None) -> int:
    """``kfpc schedule list``: recurring runs (KFP) or pipeline schedules (Vertex AI)."""
    out = out or sys.stdout
    try:
        if args.vertex:
            from google.cloud.aiplatform.compat.types import schedule_service

            request = schedule_service.ListSchedulesRequest(
                parent=remote.vertex_parent(args.project, args.region), filter=args.filter or "",
                page_size=args.page_size, order_by="create_time desc",
            )
            if args.dry_run:
                print(_vertex_dry_run("ListSchedules", request, args.region), file=out)
                return submit.EXIT_OK
            client = remote.vertex_schedule_client(args.project, args.region)
            print(f"{'SCHEDULE':<22} {'STATE':<10} {'CRON':<32} {'NEXT RUN':<26} NAME", file=out)
            for item in client.list_schedules(request=request):
                next_run = item.next_run_time.isoformat() if item.next_run_time else "-"
                print(f"{item.name.rsplit('/', 1)[-1]:<22} {item.state.name:<10} {item.cron:<32} {next_run:<26} "
                      f"{item.display_name}", file=out)
            return submit.EXIT_OK
        query = {"page_size": args.page_size, "sort_by": "created_at desc"}
        if args.experiment_id:
            query["experiment_id"] = args.experiment_id
        elif args.namespace:
            query["namespace"] = args.namespace
        if args.filter:
            query["filter"] = args.filter
        if args.dry_run:
            apis, log = remote.kfp_dry_run_apis(args.host, args.token)
            apis.recurring_runs.recurring_run_service_list_recurring_runs(**query)
            print(remote.dry_run_document("kfp", [r.to_dict() for r in log]), file=out)
            return submit.EXIT_OK
        client = remote.kfp_client_from_args(args)
        print(f"{'RECURRING RUN ID':<38} {'MODE':<8} {'TRIGGER':<32} {'MAX':<4} NAME", file=out)
        token = ""
        while True:
            page = client.recurring_runs.recurring_run_service_list_recurring_runs(page_token=token, **query)
            for item in page.recurring_runs or []:
                print(f"{item.recurring_run_id:<38} {str(item.mode):<8} {_format_kfp_trigger(item.trigger):<32} "
                      f"{str(item.max_concurrency):<4} {item.display_name}", file=out)
            token = page.next_page_token
            if not token:
                return submit.EXIT_OK
    except SubmitError as err:
        return submit.fail("schedule list", err)


_KFP_ACTIONS = {
    "pause": "recurring_run_service_disable_recurring_run",
    "resume": "recurring_run_service_enable_recurring_run",
    "delete": "recurring_run_service_delete_recurring_run",
}

_DONE = {"pause": "paused", "resume": "resumed", "delete": "deleted"}


def run_action(args: argparse.Namespace, out=None) -> int:
    """``kfpc schedule pause|resume|delete ID``."""
    out = out or sys.stdout
    action = args.action
    try:
        if args.vertex:
            from google.cloud.aiplatform.compat.types import schedule_service

            name = remote.vertex_schedule_name(args.project, args.region, args.schedule_id)
            if action == "pause":
                method, request = "PauseSchedule", schedule_service.PauseScheduleRequest(name=name)
            elif action == "resume":
                # aiplatform's PipelineJobSchedule.resume(catch_up=...) drops catch_up: send it ourselves.
                method = "ResumeSchedule"
                request = schedule_service.ResumeScheduleRequest(name=name, catch_up=args.catchup)
            else:
                method, request = "DeleteSchedule", schedule_service.DeleteScheduleRequest(name=name)
            if args.dry_run:
                print(_vertex_dry_run(method, request, args.region), file=out)
                return submit.EXIT_OK
            client = remote.vertex_schedule_client(args.project, args.region)
            call = {"PauseSchedule": client.pause_schedule, "ResumeSchedule": client.resume_schedule,
                    "DeleteSchedule": client.delete_schedule}[method]
            result = call(request=request)
            if method == "DeleteSchedule":
                result.result()  # a long-running operation: report success only once it is gone
            print(f"{_DONE[action]}: {name}", file=out)
            return submit.EXIT_OK
        if action == "resume" and args.catchup:
            raise SubmitError("--catchup on resume is a Vertex AI option; KFP decides catch-up when the "
                              "recurring run is created (kfpc schedule create --catchup)")
        if args.dry_run:
            apis, log = remote.kfp_dry_run_apis(args.host, args.token)
            getattr(apis.recurring_runs, _KFP_ACTIONS[action])(recurring_run_id=args.schedule_id)
            print(remote.dry_run_document("kfp", [r.to_dict() for r in log]), file=out)
            return submit.EXIT_OK
        client = remote.kfp_client_from_args(args)
        getattr(client.recurring_runs, _KFP_ACTIONS[action])(recurring_run_id=args.schedule_id)
        print(f"{_DONE[action]}: {args.schedule_id}", file=out)
        return submit.EXIT_OK
    except SubmitError as err:
        return submit.fail(f"schedule {action}", err)


# --------------------------------------------------------------------------- command line


def register(subparsers) -> None:
    """Add ``schedule`` (with ``create``, ``list``, ``pause``, ``resume``, ``delete``) to ``kfpc``."""
    parser = subparsers.add_parser(
        "schedule", help="recurring pipeline runs on KFP or Vertex AI",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="create a recurring run / schedule",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    submit.add_pipeline_arguments(create)
    submit.add_target_arguments(create)
    when = create.add_argument_group("schedule")
    when.add_argument("--name", required=True, help="display name of the schedule (runs are named after it)")
    when.add_argument("--cron", help="KFP: 6 fields, seconds first, UTC ('0 0 2 * * *'); "
                                     "Vertex AI: 5 fields, optional TZ= ('TZ=Europe/Berlin 0 2 * * *')")
    when.add_argument("--interval", help="KFP only: run every N seconds or '6h', '1d', '1h30m'")
    when.add_argument("--max-concurrency", type=int, default=1, help="runs at once (KFP: 1-10; default 1)")
    when.add_argument("--catchup", action=argparse.BooleanOptionalAction, default=False,
                      help="KFP: after a pause, start every missed run instead of only the latest (default: no)")
    when.add_argument("--start-time", help="RFC 3339; no runs before it")
    when.add_argument("--end-time", help="RFC 3339; no runs after it")
    when.add_argument("--paused", action="store_true", help="create it paused")
    when.add_argument("--experiment", help="KFP experiment of the runs (default 'Default')")
    when.add_argument("--description", help="KFP: description")
    when.add_argument("--max-run-count", type=int, help="Vertex AI: stop after this many runs")
    when.add_argument("--allow-queueing", action="store_true",
                      help="Vertex AI: queue a run that would exceed --max-concurrency instead of skipping it")
    create.set_defaults(func=run_create)

    lst = sub.add_parser("list", help="list recurring runs / schedules")
    submit.add_target_arguments(lst, job_options=False)
    lst.add_argument("--experiment-id", help="KFP: only this experiment's recurring runs")
    lst.add_argument("--filter", help="KFP: a JSON Filter; Vertex AI: a list filter such as 'state=\"ACTIVE\"'")
    lst.add_argument("--page-size", type=int, default=100)
    lst.add_argument("--dry-run", action="store_true", help="print the exact request and send nothing")
    lst.set_defaults(func=run_list)

    for action, text in (("pause", "pause a schedule"), ("resume", "resume a paused schedule"),
                         ("delete", "delete a schedule")):
        cmd = sub.add_parser(action, help=text)
        cmd.add_argument("schedule_id", metavar="ID",
                         help="KFP recurring run ID, or Vertex AI schedule ID / full resource name")
        submit.add_target_arguments(cmd, job_options=False)
        if action == "resume":
            cmd.add_argument("--catchup", action=argparse.BooleanOptionalAction, default=False,
                             help="Vertex AI: start the runs missed while paused (default: no)")
        cmd.add_argument("--dry-run", action="store_true", help="print the exact request and send nothing")
        cmd.set_defaults(func=run_action, action=action, catchup=False)


def main(argv: list[str] | None = None) -> int:
    """Run ``schedule`` alone (``python -m kfpc.pipelines.schedule create ...``)."""
    parser = argparse.ArgumentParser(prog="kfpc")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["schedule", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
