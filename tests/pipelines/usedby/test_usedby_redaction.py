"""Secrets never printed: URL credentials and tokens in ``kfpc submit|schedule`` dry runs and errors."""

import json

import pytest

from kfpc.components._redact import excerpt, redact, redact_obj
from kfpc.pipelines import cli

SECRETS = ("pa55word", "s3cr3t-token", "qtok123", "atok456")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_submit_dry_run_redacts_a_password_in_host_tokens_and_token_parameters(capsys, tiny_package):
    code, out, err = run_cli(
        capsys, "submit", "--host", "https://alice:pa55word@kfp.example.com/pipeline", "--package",
        str(tiny_package), "--param", "a=3", "--param", "label=https://data.example.com/x.csv?token=qtok123",
        "--token", "s3cr3t-token", "--dry-run",
    )
    assert code == 0, err
    for secret in SECRETS:
        assert secret not in out + err
    [request] = json.loads(out)["requests"]
    assert request["url"] == "https://alice:<redacted>@kfp.example.com/pipeline/apis/v2beta1/runs"
    assert request["headers"]["authorization"] == "Bearer <redacted>"
    assert request["body"]["runtime_config"]["parameters"]["label"] == \
        "https://data.example.com/x.csv?token=<redacted>"


def test_schedule_dry_run_redacts_the_host(capsys, tiny_package):
    code, out, err = run_cli(
        capsys, "schedule", "create", "--host", "http://bob:pa55word@kfp:8080", "--name", "nightly",
        "--package", str(tiny_package), "--param", "a=2", "--cron", "0 0 2 * * *", "--dry-run",
    )
    assert code == 0, err
    assert "pa55word" not in out + err
    assert json.loads(out)["requests"][0]["url"].startswith("http://bob:<redacted>@kfp:8080/")


def test_a_bad_input_error_redacts_what_it_quotes(capsys, tiny_package):
    code, out, err = run_cli(capsys, "submit", "--host", "https://alice:pa55word@kfp.example.com",
                             "--package", str(tiny_package), "--param", "nope=1?access_token=atok456", "--dry-run")
    assert code == 2
    assert "atok456" not in out + err and "pa55word" not in out + err


@pytest.mark.parametrize("text,expected", [
    ("https://u:p%40ss@host/x", "https://u:<redacted>@host/x"),
    ("s3://AKIAKEY@bucket/x", "s3://<redacted>@bucket/x"),
    ("gs://bucket/model/v1", "gs://bucket/model/v1"),
    ("mailto-like text a@b", "mailto-like text a@b"),
    ("GET /x?a=1&access_token=abc.def&b=2", "GET /x?a=1&access_token=<redacted>&b=2"),
    ("Authorization: Bearer eyJhbGci.x.y", "Authorization: <redacted>"),
    ("{'authorization': 'Basic dXNlcjpwYXNz'}", "{'authorization': '<redacted>'}"),
    ("sent with Bearer abcdef123456", "sent with Bearer <redacted>"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_redact_obj_and_excerpt():
    assert redact_obj({"headers": {"Authorization": "Bearer x"}, "u": ["https://a:b@h"]}) == {
        "headers": {"Authorization": "Bearer <redacted>"}, "u": ["https://a:<redacted>@h"]}
    assert excerpt("x" * 10_000) == repr("x" * 80) + "… (10000 chars)"
    assert excerpt("a\x00b\n\"c") == repr("a\x00b\n\"c")
    assert len(excerpt(b"\xff" * 5_000_000)) < 200
