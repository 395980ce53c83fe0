"""``kfpc upload`` through the real ``kfp.Client`` against a KFP API stand-in on 127.0.0.1: the first upload
creates the pipeline, the next adds a version holding exactly the compiled package; credentials reach the
server the way the chosen method sends them; --dry-run prints the same requests and sends nothing."""

import contextlib
import io
import json
from pathlib import Path

import yaml

from kfpc.pipelines import cli
from tests.pipelines.usedby.fake_kfp import FakeKfp

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "pipelines" / "compiled" / "kfp" / "training_pipeline.yaml"


def _header(request: dict, name: str):
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def _kfpc(*argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def test_upload_creates_the_pipeline_then_adds_versions_with_the_compiled_package():
    with FakeKfp() as kfp:
        code, text = _kfpc("upload", "--host", kfp.host, "--package", str(PACKAGE), "--name", "churn",
                           "--credentials", "token", "--token", "s3cret")
        assert code == 0, text
        assert "pipeline created: churn" in text and "/#/pipelines/details/" in text
        code, text = _kfpc("upload", "--host", kfp.host, "--package", str(PACKAGE), "--name", "churn",
                           "--version-name", "v2", "--credentials", "token", "--token", "s3cret")
        assert code == 0, text
        assert "pipeline version added: churn / v2" in text
        (pipeline,) = kfp.pipelines.values()
        assert [v["display_name"] for v in pipeline["versions"]] == ["churn", "v2"]
        assert yaml.safe_load_all(pipeline["versions"][1]["package"]).__next__() == \
            next(yaml.safe_load_all(PACKAGE.read_text()))
        uploads = [r for r in kfp.requests if r["path"].startswith("/apis/v2beta1/pipelines/upload")]
        assert all(_header(r, "Authorization") == "Bearer s3cret" for r in uploads)


def test_session_cookies_of_a_dex_login_are_sent_as_cookies():
    with FakeKfp() as kfp:
        code, text = _kfpc("upload", "--host", kfp.host, "--package", str(PACKAGE), "--credentials", "cookies",
                           "--cookies", "authservice_session=abc123")
        assert code == 0, text
        upload = next(r for r in kfp.requests if r["path"] == "/apis/v2beta1/pipelines/upload")
        assert _header(upload, "Cookie") == "authservice_session=abc123"
        assert _header(upload, "Authorization") is None


def test_a_credentials_method_without_its_secret_is_a_usage_error_before_any_request():
    with FakeKfp() as kfp:
        code, text = _kfpc("upload", "--host", kfp.host, "--package", str(PACKAGE), "--credentials", "cookies")
        assert code == 2 and "--credentials cookies: give --cookies" in text
        assert kfp.requests == []


def test_dry_run_prints_the_requests_the_client_sends_and_sends_nothing():
    code, text = _kfpc("upload", "--host", "https://kfp.example.com", "--package", str(PACKAGE), "--name", "churn",
                       "--version-name", "v2", "--dry-run")
    assert code == 0, text
    doc = json.loads(text)
    urls = [r["url"] for r in doc["requests"]]
    assert urls[0].startswith("https://kfp.example.com/apis/v2beta1/pipelines?")
    assert urls[1].startswith("https://kfp.example.com/apis/v2beta1/pipelines/upload_version?name=v2")
    assert urls[2] == "https://kfp.example.com/apis/v2beta1/pipelines/upload?name=churn"
    assert doc["requests"][2]["body"]["uploadfile"] == {"filename": PACKAGE.name, "bytes": PACKAGE.stat().st_size}
