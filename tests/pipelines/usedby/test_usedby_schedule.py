"""``kfpc schedule``: every action in dry-run for both targets, checked field by field; KFP's real path too."""

import json

import pytest

from kfpc.pipelines import cli

VERTEX = ["--vertex", "--project", "my-project", "--region", "us-central1"]


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def dry_run(capsys, *argv) -> dict:
    code, out, err = run_cli(capsys, *argv, "--dry-run")
    assert code == 0, err
    return json.loads(out)


# --------------------------------------------------------------------------- KFP


def test_kfp_create_cron_dry_run_field_by_field(capsys, tiny_package):
    doc = dry_run(
        capsys, "schedule", "create", "--host", "http://kfp:8080", "--namespace", "team-a", "--name", "nightly",
        "--package", str(tiny_package), "--param", "a=2", "--cron", "0 0 2 * * *", "--max-concurrency", "3",
        "--start-time", "2030-01-01T00:00:00Z", "--end-time", "2030-12-31T00:00:00+01:00",
        "--service-account", "pipeline-runner", "--pipeline-root", "minio://mlpipeline/v2", "--description", "d",
    )
    [request] = doc["requests"]
    assert (request["method"], request["url"]) == ("POST", "http://kfp:8080/apis/v2beta1/recurringruns")
    body = request["body"]
    assert body["display_name"] == "nightly"
    assert body["description"] == "d"
    assert body["mode"] == "ENABLE"
    assert body["max_concurrency"] == 3
    assert body["no_catchup"] is True  # default: one run after a pause, not a backlog
    assert body["service_account"] == "pipeline-runner"
    assert body["trigger"] == {"cron_schedule": {
        "cron": "0 0 2 * * *", "start_time": "2030-01-01T00:00:00+00:00", "end_time": "2030-12-31T00:00:00+01:00"}}
    assert body["runtime_config"] == {"parameters": {"a": 2}, "pipeline_root": "minio://mlpipeline/v2"}
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "tiny-pipeline"
    assert "'Default' in namespace 'team-a'" in doc["notes"][0]
    assert doc["notes"][1].startswith("next runs: 2030-01-01T02:00:00+00:00, 2030-01-02T02:00:00+00:00")


def test_kfp_create_interval_paused_with_catchup(capsys, tiny_package):
    doc = dry_run(capsys, "schedule", "create", "--name", "six-hourly", "--package", str(tiny_package),
                  "--param", "a=1", "--interval", "6h", "--paused", "--catchup")
    body = doc["requests"][0]["body"]
    assert body["trigger"] == {"periodic_schedule": {"interval_second": 21600}}
    assert body["mode"] == "DISABLE"
    assert body["no_catchup"] is False


@pytest.mark.parametrize("argv, fragment", [
    (["--cron", "0 2 * * *"], "For the unix crontab meaning, write '0 0 2 * * *'"),
    (["--cron", "TZ=Europe/Berlin 0 0 2 * * *"], "fire in UTC"),
    (["--cron", "0 0 2 * * *", "--interval", "1h"], "exactly one of --cron or --interval"),
    ([], "exactly one of --cron or --interval"),
    (["--interval", "soon"], "interval 'soon'"),
    (["--cron", "0 0 2 * * *", "--max-concurrency", "11"], "KFP accepts 1-10"),
    (["--cron", "0 0 2 * * *", "--start-time", "tomorrow"], "--start-time 'tomorrow'"),
    (["--cron", "0 0 2 * * *", "--start-time", "2030-02-01", "--end-time", "2030-01-01"], "is not after"),
])
def test_kfp_create_refuses_bad_schedules_before_any_request(capsys, tiny_package, argv, fragment):
    code, out, err = run_cli(capsys, "schedule", "create", "--name", "n", "--package", str(tiny_package),
                             "--param", "a=1", *argv, "--dry-run")
    assert code == 2
    assert out == ""
    assert fragment in err


@pytest.mark.parametrize("action, method, suffix", [
    ("pause", "POST", "/recurringruns/rr-1:disable"),
    ("resume", "POST", "/recurringruns/rr-1:enable"),
    ("delete", "DELETE", "/recurringruns/rr-1"),
])
def test_kfp_actions_dry_run(capsys, action, method, suffix):
    doc = dry_run(capsys, "schedule", action, "rr-1", "--host", "http://kfp:8080", "--token", "tok")
    [request] = doc["requests"]
    assert (request["method"], request["url"]) == (method, "http://kfp:8080/apis/v2beta1" + suffix)
    assert request["headers"]["authorization"] == "Bearer <redacted>"
    assert "body" not in request


def test_kfp_list_dry_run_query(capsys):
    doc = dry_run(capsys, "schedule", "list", "--host", "http://kfp:8080", "--namespace", "team-a",
                  "--page-size", "20")
    request = doc["requests"][0]
    assert request["method"] == "GET"
    assert request["url"] == ("http://kfp:8080/apis/v2beta1/recurringruns?page_size=20&sort_by=created_at+desc"
                              "&namespace=team-a")
    doc = dry_run(capsys, "schedule", "list", "--host", "http://kfp:8080", "--experiment-id", "e-1")
    assert doc["requests"][0]["url"].endswith("&experiment_id=e-1")


def test_kfp_resume_catchup_is_explained(capsys):
    code, _, err = run_cli(capsys, "schedule", "resume", "rr-1", "--catchup", "--dry-run")
    assert code == 2
    assert "decides catch-up when the recurring run is created" in err


def test_kfp_real_schedule_lifecycle(capsys, tiny_package, fake_kfp):
    create = ["schedule", "create", "--host", fake_kfp.host, "--name", "nightly", "--package", str(tiny_package),
              "--param", "a=2", "--cron", "0 0 2 * * *", "--experiment", "retrain"]
    printed = dry_run(capsys, *create)["requests"][0]["body"]
    code, out, err = run_cli(capsys, *create)
    assert code == 0, err
    [sent] = fake_kfp.bodies("POST", "/apis/v2beta1/recurringruns")
    experiment_id = next(iter(fake_kfp.experiments))
    assert sent == dict(printed, experiment_id=experiment_id)
    rr_id = next(iter(fake_kfp.recurring_runs))
    assert f"recurring_run_id: {rr_id}" in out
    assert f"{fake_kfp.host}/#/recurringrun/details/{rr_id}" in out

    code, out, _ = run_cli(capsys, "schedule", "list", "--host", fake_kfp.host)
    assert code == 0
    [row] = [line for line in out.splitlines() if rr_id in line]
    assert "ENABLE" in row and "cron '0 0 2 * * *'" in row and row.endswith("nightly")

    assert run_cli(capsys, "schedule", "pause", rr_id, "--host", fake_kfp.host)[0] == 0
    assert fake_kfp.recurring_runs[rr_id]["mode"] == "DISABLE"
    assert run_cli(capsys, "schedule", "resume", rr_id, "--host", fake_kfp.host)[0] == 0
    assert fake_kfp.recurring_runs[rr_id]["mode"] == "ENABLE"
    code, out, _ = run_cli(capsys, "schedule", "delete", rr_id, "--host", fake_kfp.host)
    assert (code, out.strip()) == (0, f"deleted: {rr_id}")
    assert fake_kfp.recurring_runs == {}


def test_kfp_real_action_on_unknown_id_fails_loudly(capsys, fake_kfp):
    import kfp_server_api

    with pytest.raises(kfp_server_api.ApiException) as err:
        cli.main(["schedule", "pause", "missing", "--host", fake_kfp.host])
    assert err.value.status == 404


# --------------------------------------------------------------------------- Vertex AI


def test_vertex_create_dry_run_field_by_field(capsys, tiny_package):
    doc = dry_run(
        capsys, "schedule", "create", *VERTEX, "--pipeline-root", "gs://bucket/root", "--name", "nightly",
        "--package", str(tiny_package), "--param", "a=2", "--cron", "TZ=Europe/Berlin 0 2 * * 1-5",
        "--max-concurrency", "2", "--max-run-count", "30", "--allow-queueing",
        "--start-time", "2030-01-01T00:00:00Z", "--end-time", "2030-06-30T00:00:00Z",
        "--service-account", "runner@my-project.iam.gserviceaccount.com",
        "--network", "projects/42/global/networks/vpc", "--labels", "team=ml",
    )
    [request] = doc["requests"]
    assert request["rpc"] == "google.cloud.aiplatform.v1.ScheduleService.CreateSchedule"
    assert request["endpoint"] == "us-central1-aiplatform.googleapis.com"
    body = request["request"]
    assert body["parent"] == "projects/my-project/locations/us-central1"
    schedule = body["schedule"]
    assert schedule["displayName"] == "nightly"
    assert schedule["cron"] == "TZ=Europe/Berlin 0 2 * * 1-5"
    assert schedule["maxConcurrentRunCount"] == "2"
    assert schedule["maxRunCount"] == "30"
    assert schedule["allowQueueing"] is True
    assert (schedule["startTime"], schedule["endTime"]) == ("2030-01-01T00:00:00Z", "2030-06-30T00:00:00Z")
    create_job = schedule["createPipelineJobRequest"]
    assert create_job["parent"] == "projects/my-project/locations/us-central1"
    job = create_job["pipelineJob"]
    assert job["serviceAccount"] == "runner@my-project.iam.gserviceaccount.com"
    assert job["network"] == "projects/42/global/networks/vpc"
    assert job["labels"] == {"team": "ml"}
    assert job["runtimeConfig"] == {"gcsOutputDirectory": "gs://bucket/root", "parameterValues": {"a": 2}}
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "tiny-pipeline"
    # 2030-01-01 is a Tuesday: 02:00 Berlin time (UTC+1 in winter)
    assert doc["notes"][0].startswith("next runs: 2030-01-01T02:00:00+01:00, 2030-01-02T02:00:00+01:00")
    assert doc["notes"][0].endswith("(Europe/Berlin)")


def test_vertex_schedule_matches_what_the_sdk_builds(tiny_package):
    """Our CreateScheduleRequest holds the Schedule that aiplatform.PipelineJobSchedule.create would send."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    from kfpc.pipelines import cron, remote

    job = remote.vertex_pipeline_job(tiny_package, "p", "us-central1", "gs://b/r", {"a": 1}, "n",
                                     labels={"team": "ml"}, credentials=AnonymousCredentials())
    ours = remote.vertex_create_schedule_request(job, "n", cron.validate_cron("0 2 * * *", cron.VERTEX),
                                                 max_concurrent_run_count=2, service_account="sa@p.iam.gserviceaccount.com")
    sdk = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name="n", credentials=job.credentials)
    captured = {}

    class _Client:
        def create_schedule(self, parent, schedule, timeout=None):
            captured.update(parent=parent, schedule=schedule)
            return schedule

    sdk.api_client = _Client()  # the only stand-in: the transport, so nothing is sent
    try:
        sdk.create(cron="0 2 * * *", max_concurrent_run_count=2, service_account="sa@p.iam.gserviceaccount.com")
    except Exception:  # noqa: BLE001 - the SDK logs the dashboard link from a real response afterwards
        pass
    assert captured, "aiplatform did not reach create_schedule"
    assert captured["parent"] == ours.parent
    assert captured["schedule"] == ours.schedule


@pytest.mark.parametrize("argv, fragment", [
    (["--cron", "0 0 2 * * *"], "Drop the seconds field: '0 2 * * *'"),
    (["--cron", "@daily"], "write '0 0 * * *'"),
    (["--interval", "6h"], "cron-only: use --cron '0 */6 * * *'"),
    (["--interval", "7h"], "cron-only: use --cron"),
    (["--cron", "TZ=Nowhere/Town 0 2 * * *"], "not an IANA time zone"),
    (["--cron", "0 2 * * *", "--max-run-count", "0"], "--max-run-count 0"),
    (["--cron", "0 2 * * *", "--max-concurrency", "0"], "--max-concurrency 0"),
])
def test_vertex_create_refuses_bad_schedules(capsys, tiny_package, argv, fragment):
    code, out, err = run_cli(capsys, "schedule", "create", *VERTEX, "--pipeline-root", "gs://b", "--name", "n",
                             "--package", str(tiny_package), "--param", "a=1", *argv, "--dry-run")
    assert code == 2, out
    assert fragment in err


@pytest.mark.parametrize("action, rpc, extra, expected", [
    ("pause", "PauseSchedule", [], {"name": "projects/my-project/locations/us-central1/schedules/123"}),
    ("resume", "ResumeSchedule", [], {"name": "projects/my-project/locations/us-central1/schedules/123"}),
    ("resume", "ResumeSchedule", ["--catchup"],
     {"name": "projects/my-project/locations/us-central1/schedules/123", "catchUp": True}),
    ("delete", "DeleteSchedule", [], {"name": "projects/my-project/locations/us-central1/schedules/123"}),
])
def test_vertex_actions_dry_run(capsys, action, rpc, extra, expected):
    doc = dry_run(capsys, "schedule", action, "123", *VERTEX, *extra)
    [request] = doc["requests"]
    assert request["rpc"] == f"google.cloud.aiplatform.v1.ScheduleService.{rpc}"
    assert request["request"] == expected
    # a full resource name is taken as is
    full = "projects/other/locations/europe-west4/schedules/9"
    doc = dry_run(capsys, "schedule", action, full, *VERTEX, *extra)
    assert doc["requests"][0]["request"]["name"] == full


def test_vertex_list_dry_run(capsys):
    doc = dry_run(capsys, "schedule", "list", *VERTEX, "--filter", 'state="ACTIVE"')
    assert doc["requests"][0]["request"] == {
        "parent": "projects/my-project/locations/us-central1", "filter": 'state="ACTIVE"', "pageSize": 100,
        "orderBy": "create_time desc",
    }


def test_vertex_action_rejects_a_bad_id(capsys):
    code, _, err = run_cli(capsys, "schedule", "pause", "nightly", *VERTEX, "--dry-run")
    assert code == 2
    assert "numeric schedule ID or its full resource name" in err
