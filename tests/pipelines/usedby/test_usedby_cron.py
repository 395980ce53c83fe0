"""Cron checks for both targets: what each scheduler accepts, what it would misread, and the fix shown."""

from __future__ import annotations

import datetime as dt

import pytest

from kfpc.pipelines import cron

UTC = dt.UTC
T0 = dt.datetime(2025, 1, 1, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize("expression", [
    "0 0 2 * * *", "0 */15 * * * *", "0 0 9 ? * 2-6", "30 5 1-5,10 1 jan-mar MON", "0 0 0 1 * *",
    "@daily", "@hourly", "@every 1h30m", "@every 90s", "0 0 12 */2 * ?",
])
def test_kfp_accepts_six_field_crons_and_descriptors(expression):
    spec = cron.validate_cron(expression, cron.KFP)
    assert spec.expression == expression
    assert spec.timezone is None
    assert len(spec.next_fire_times(T0, 2)) == 2


@pytest.mark.parametrize("expression", [
    "0 2 * * *", "*/5 * * * *", "0 9 * * 1-5", "TZ=Europe/Berlin 0 2 * * *", "CRON_TZ=UTC 0 0 * * 0",
    "15,45 8-18 * * MON-FRI", "0 0 1 1 *", "0 0 * * 7",
])
def test_vertex_accepts_five_field_crons_with_optional_timezone(expression):
    spec = cron.validate_cron(expression, cron.VERTEX)
    assert spec.expression == expression
    assert len(spec.next_fire_times(T0, 2)) == 2


def test_five_fields_on_kfp_explains_the_hourly_misreading_and_shows_the_fix():
    with pytest.raises(cron.CronError) as err:
        cron.validate_cron("0 2 * * *", cron.KFP)
    message = str(err.value)
    assert "6 with seconds first" in message
    assert "firing 24 times on 2030-01-01 instead of 1" in message
    assert "'0 0 2 * * *'" in message
    # the suggested fix is itself valid and fires daily at 02:00 UTC
    fixed = cron.validate_cron("0 0 2 * * *", cron.KFP)
    assert [t.hour for t in fixed.next_fire_times(T0, 3)] == [2, 2, 2]


def test_six_fields_on_vertex_shows_the_five_field_fix():
    with pytest.raises(cron.CronError, match=r"Drop the seconds field: '0 2 \* \* \*'"):
        cron.validate_cron("0 0 2 * * *", cron.VERTEX)
    with pytest.raises(cron.CronError, match=r"TZ=Europe/Berlin 0 2 \* \* \*"):
        cron.validate_cron("TZ=Europe/Berlin 0 0 2 * * *", cron.VERTEX)
    with pytest.raises(cron.CronError, match="whole minutes"):
        cron.validate_cron("30 0 2 * * *", cron.VERTEX)
    with pytest.raises(cron.CronError, match=r"'0 9 \* \* 1-5'"):  # KFP's '?' becomes '*' in the fix
        cron.validate_cron("0 0 9 ? * 1-5", cron.VERTEX)


@pytest.mark.parametrize("expression, target, fragment", [
    ("TZ=Europe/Berlin 0 0 2 * * *", cron.KFP, "fire in UTC"),
    ("TZ=Mars/Olympus 0 2 * * *", cron.VERTEX, "not an IANA time zone"),
    ("0 0 0 * * 7", cron.KFP, "write 0 instead of 7"),
    ("60 0 0 * * *", cron.KFP, "second 60 is out of range 0-59"),
    ("0 0 24 * * *", cron.KFP, "hour 24 is out of range 0-23"),
    ("0 0 0 0 * *", cron.KFP, "day-of-month 0 is out of range 1-31"),
    ("0 0 13 *", cron.VERTEX, "takes 5 fields"),
    ("0 0 0 * 13 *", cron.KFP, "month 13 is out of range 1-12"),
    ("0 0 0 * foo *", cron.KFP, "month value 'foo' is not a number"),
    ("0 0 0 31 2 *", cron.KFP, "never fires"),
    ("0 0 5-1 * * *", cron.KFP, "runs backwards"),
    ("0 */0 * * * *", cron.KFP, "step '0' must be a positive integer"),
    ("5/15 * * * *", cron.VERTEX, "'5-59/15'"),
    ("0 0 ? * *", cron.VERTEX, "use '*': '0 0 * * *'"),
    ("@daily", cron.VERTEX, "write '0 0 * * *'"),
    ("@every soon", cron.KFP, "not a Go duration"),
    ("@fortnightly", cron.KFP, "unknown descriptor"),
    ("", cron.KFP, "empty"),
])
def test_invalid_crons_name_the_field_and_value(expression, target, fragment):
    with pytest.raises(cron.CronError) as err:
        cron.validate_cron(expression, target)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_unknown_target_is_rejected():
    with pytest.raises(ValueError, match="unknown schedule target"):
        cron.validate_cron("0 0 0 * * *", "airflow")


def test_next_fire_times_follow_each_dialect():
    # KFP: seconds first, UTC
    kfp = cron.validate_cron("30 15 9 * * 1-5", cron.KFP)
    times = kfp.next_fire_times(T0, 3)
    assert times == [dt.datetime(2025, 1, d, 9, 15, 30, tzinfo=UTC) for d in (1, 2, 3)]
    # Vertex: local time of the TZ= zone, Sunday as 7
    vertex = cron.validate_cron("TZ=America/New_York 0 6 * * 7", cron.VERTEX)
    first = vertex.next_fire_times(T0, 1)[0]
    assert (first.year, first.month, first.day, first.hour) == (2025, 1, 5, 6)
    assert first.utcoffset() == dt.timedelta(hours=-5)
    assert first.astimezone(UTC).hour == 11


def test_day_of_month_and_day_of_week_combine_like_cron():
    # both restricted: either may match (the 1st of the month OR a Monday)
    either = cron.validate_cron("0 0 0 1 * 1", cron.KFP)
    days = [t.day for t in either.next_fire_times(dt.datetime(2025, 1, 1, 1, tzinfo=UTC), 4)]
    assert days == [6, 13, 20, 27]
    days = [t.date() for t in either.next_fire_times(dt.datetime(2025, 1, 27, 1, tzinfo=UTC), 2)]
    assert days == [dt.date(2025, 2, 1), dt.date(2025, 2, 3)]
    # day-of-week unrestricted: only the day of month counts
    only_dom = cron.validate_cron("0 0 0 1 * *", cron.KFP)
    assert all(t.day == 1 for t in only_dom.next_fire_times(T0, 3))


def test_every_descriptor_fires_by_period():
    spec = cron.validate_cron("@every 1h30m", cron.KFP)
    assert spec.every_seconds == 5400
    assert spec.next_fire_times(T0, 2) == [T0 + dt.timedelta(minutes=90), T0 + dt.timedelta(minutes=180)]


def test_next_fire_times_needs_an_aware_datetime():
    with pytest.raises(ValueError, match="aware"):
        cron.validate_cron("0 0 0 * * *", cron.KFP).next_fire_times(dt.datetime(2025, 1, 1))


@pytest.mark.parametrize("text, seconds", [
    ("3600", 3600), ("6h", 21600), ("1d", 86400), ("1h30m", 5400), ("90s", 90), ("1w", 604800), (120, 120),
])
def test_parse_interval(text, seconds):
    assert cron.parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "6 hours", "h", "-5", "1.5h"])
def test_parse_interval_rejects_garbage(text):
    with pytest.raises(cron.CronError, match="interval"):
        cron.parse_interval(text)
