"""Cron and interval checks for the two schedulers kfpc submits to, before any request is sent.

The two targets read cron differently, and the difference fails silently:

* **KFP** recurring runs are parsed by ``github.com/robfig/cron`` v1 (the ScheduledWorkflow controller):
  **6 fields, seconds first** (``second minute hour day-of-month month day-of-week``), day-of-week
  0-6, ``?`` allowed, descriptors ``@daily``/``@every 1h30m``. It also accepts 5 fields, but reads them
  as *seconds first with day-of-week omitted*: the everyday crontab ``0 2 * * *`` becomes "second 0 of
  minute 2 of every hour" - a run every hour instead of once a day. Times are UTC; there is no ``TZ=``.
* **Vertex AI** schedules take the **5-field** unix crontab (``minute hour day-of-month month
  day-of-week``), day-of-week 0-7, optionally prefixed with ``TZ=<IANA zone>`` or ``CRON_TZ=<IANA zone>``.

:func:`validate_cron` rejects what the target would misread and says which expression to use instead;
:func:`next_fire_times` shows when a valid expression fires, so a dry-run makes the schedule visible.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo

KFP = "kfp"
VERTEX = "vertex"
TARGETS = (KFP, VERTEX)

_MONTH_NAMES = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_DOW_NAMES = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DOW_KFP = _Field("day-of-week", 0, 6, _DOW_NAMES)  # robfig/cron v1: 0-6, no 7
_DOW_UNIX = _Field("day-of-week", 0, 7, _DOW_NAMES)  # unix crontab: 0 and 7 are Sunday

_KFP_FIELDS = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW_KFP)
_VERTEX_FIELDS = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW_UNIX)

# robfig/cron v1 descriptors and their 6-field / 5-field equivalents.
_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}

_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_INTERVAL_PART = re.compile(r"(\d+)([smhdw])")
_INTERVAL_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TZ_PREFIX = re.compile(r"^(CRON_TZ|TZ)=(\S+)\s+(.*)$")


class CronError(ValueError):
    """A cron expression or interval the target scheduler would reject or misread."""


@dataclasses.dataclass(frozen=True)
class CronSpec:
    """A cron expression checked for one target.

    Attributes:
        expression: the string to send, exactly as given (stripped).
        target: ``kfp`` or ``vertex``.
        timezone: the IANA zone of a ``TZ=``/``CRON_TZ=`` prefix (Vertex), else ``None`` (UTC).
        every_seconds: for KFP's ``@every <duration>``, the period in seconds; else ``None``.
    """

    expression: str
    target: str
    timezone: str | None = None
    every_seconds: float | None = None
    _sets: tuple[frozenset[int], ...] = ()
    _dom_star: bool = True
    _dow_star: bool = True

    def next_fire_times(self, after: dt.datetime, count: int = 3) -> list[dt.datetime]:
        """See :func:`next_fire_times`."""
        return next_fire_times(self, after, count)


def _target_label(target: str) -> str:
    return "KFP" if target == KFP else "Vertex AI"


def _parse_value(token: str, field: _Field, expression: str, target: str) -> int:
    if field.names and token.lower() in field.names:
        return field.names[token.lower()]
    if not token.isdigit():
        allowed = f" or a name ({', '.join(sorted(field.names, key=field.names.get))})" if field.names else ""
        raise CronError(
            f"cron {expression!r}: {field.name} value {token!r} is not a number{allowed} "
            f"({_target_label(target)} reads {field.name} as {field.low}-{field.high})"
        )
    value = int(token)
    if not field.low <= value <= field.high:
        hint = ""
        if field is _DOW_KFP and value == 7:
            hint = "; KFP's robfig/cron counts Sunday as 0 only: write 0 instead of 7"
        raise CronError(
            f"cron {expression!r}: {field.name} {value} is out of range "
            f"{field.low}-{field.high} for {_target_label(target)}{hint}"
        )
    return value


def _parse_field(text: str, field: _Field, expression: str, target: str) -> tuple[frozenset[int], bool]:
    """Expand one cron field into the set of values it matches; the bool says it starts with ``*``/``?``."""
    values: set[int] = set()
    star = False
    if not text:
        raise CronError(f"cron {expression!r}: empty {field.name} field")
    for part in text.split(","):
        range_text, _, step_text = part.partition("/")
        if part.count("/") > 1 or (("/" in part) and not step_text):
            raise CronError(f"cron {expression!r}: {field.name} {part!r} has a malformed step")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"cron {expression!r}: {field.name} step {step_text!r} must be a positive integer")
            step = int(step_text)
        if range_text in ("*", "?"):
            if range_text == "?" and target == VERTEX:
                raise CronError(
                    f"cron {expression!r}: '?' in {field.name} is Quartz/robfig syntax that the unix crontab "
                    f"Vertex AI reads does not accept; use '*': {expression.replace('?', '*')!r}"
                )
            if range_text == "?" and field not in (_DOM, _DOW_KFP):
                raise CronError(f"cron {expression!r}: '?' is only meaningful in day-of-month or day-of-week")
            low, high = field.low, field.high
            star = star or part == text  # a lone */n or * counts as unrestricted for the day rule
        elif "-" in range_text:
            pieces = range_text.split("-")
            if len(pieces) != 2:
                raise CronError(f"cron {expression!r}: {field.name} range {range_text!r} has too many '-'")
            low = _parse_value(pieces[0], field, expression, target)
            high = _parse_value(pieces[1], field, expression, target)
            if low > high:
                raise CronError(
                    f"cron {expression!r}: {field.name} range {range_text!r} runs backwards; "
                    f"write it as {pieces[1]}-{pieces[0]} or split it with ','"
                )
        else:
            low = _parse_value(range_text, field, expression, target)
            high = low
            if step_text:
                if target == VERTEX:
                    raise CronError(
                        f"cron {expression!r}: {field.name} {part!r}: the unix crontab needs a range before "
                        f"'/'; write {f'{low}-{field.high}/{step}'!r}"
                    )
                high = field.high  # robfig: "N/step" means "N-max/step"
        values.update(range(low, high + 1, step))
    if field is _DOW_UNIX and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values), star


def _split_timezone(expression: str, target: str) -> tuple[str | None, str]:
    match = _TZ_PREFIX.match(expression)
    if not match:
        if expression.startswith(("TZ=", "CRON_TZ=")):
            raise CronError(f"cron {expression!r}: a {expression.split('=')[0]}= prefix needs a schedule after it")
        return None, expression
    prefix, zone, rest = match.groups()
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"cron {expression!r}: {zone!r} is not an IANA time zone (for example 'Europe/Berlin', "
            f"'America/New_York', 'UTC')"
        ) from None
    if target == KFP:
        offset = dt.datetime.now(tz).strftime("%z")
        raise CronError(
            f"cron {expression!r}: KFP recurring runs fire in UTC and its cron parser (robfig/cron v1) has no "
            f"{prefix}= prefix; drop it and write the hours of {rest!r} in UTC ({zone} is UTC{offset[:3]}:"
            f"{offset[3:]} today; daylight saving time moves it)"
        )
    return zone, rest


def _parse_go_duration(text: str, expression: str) -> float:
    if not _GO_DURATION.match(text):
        raise CronError(
            f"cron {expression!r}: {text!r} is not a Go duration; write e.g. '@every 6h' or '@every 1h30m' "
            f"(units h, m, s)"
        )
    seconds = sum(float(n) * _GO_UNIT_SECONDS[u] for n, u in _GO_DURATION_PART.findall(text))
    if seconds < 1:
        raise CronError(f"cron {expression!r}: @every needs at least 1s")
    return seconds


def validate_cron(expression: str, target: str) -> CronSpec:
    """Check a cron expression for a target before any request is sent.

    Args:
        expression: the cron string as the user typed it.
        target: ``kfp`` (6 fields, seconds first, UTC) or ``vertex`` (5 fields, optional ``TZ=`` prefix).
    Returns:
        The checked :class:`CronSpec` (its ``expression`` is what to send).
    Raises:
        CronError: naming the problem and, where there is one, the expression that does what was meant.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown schedule target {target!r}; expected one of {TARGETS}")
    expression = " ".join(expression.split())
    if not expression:
        raise CronError("cron expression is empty")
    zone, body = _split_timezone(expression, target)

    if body.startswith("@"):
        if target == VERTEX:
            equivalent = _DESCRIPTORS.get(body)
            fix = f"; write {' '.join(equivalent.split()[1:])!r}" if equivalent else ""
            raise CronError(f"cron {expression!r}: Vertex AI takes a 5-field crontab, not descriptors{fix}")
        if body.startswith("@every "):
            seconds = _parse_go_duration(body[len("@every "):].strip(), expression)
            return CronSpec(expression, target, every_seconds=seconds)
        if body not in _DESCRIPTORS:
            raise CronError(
                f"cron {expression!r}: unknown descriptor; KFP knows {', '.join(sorted(_DESCRIPTORS))} "
                f"and '@every <duration>'"
            )
        return dataclasses.replace(validate_cron(_DESCRIPTORS[body], KFP), expression=expression)

    tokens = body.split()
    if target == KFP and len(tokens) == 5:
        _explain_five_fields_on_kfp(expression, tokens)
    if target == VERTEX and len(tokens) == 6:
        _explain_six_fields_on_vertex(expression, tokens, zone)
    fields = _KFP_FIELDS if target == KFP else _VERTEX_FIELDS
    if len(tokens) != len(fields):
        layout = " ".join(f.name for f in fields)
        raise CronError(
            f"cron {expression!r}: {_target_label(target)} takes {len(fields)} fields ({layout}), got {len(tokens)}"
        )
    parsed = [_parse_field(token, field, expression, target) for token, field in zip(tokens, fields, strict=True)]
    sets = tuple(values for values, _ in parsed)
    if target == VERTEX:  # normalise to (second, minute, hour, dom, month, dow) like KFP's
        sets = (frozenset({0}),) + sets
    dom_star, dow_star = parsed[-3][1], parsed[-1][1]
    spec = CronSpec(expression, target, zone, None, sets, dom_star, dow_star)
    if not next_fire_times(spec, dt.datetime(2000, 1, 1, tzinfo=dt.UTC), 1, horizon_years=30):
        raise CronError(f"cron {expression!r}: never fires (no such date, e.g. 30 or 31 February)")
    return spec


def _explain_five_fields_on_kfp(expression: str, tokens: list[str]) -> None:
    suggestion = "0 " + " ".join(tokens)
    try:
        validate_cron(suggestion, KFP)
    except CronError:
        suggestion = ""
    misread = (
        f"KFP would read it as second={tokens[0]} minute={tokens[1]} hour={tokens[2]} "
        f"day-of-month={tokens[3]} month={tokens[4]} (seconds first, day-of-week omitted)"
    )
    try:  # how often the misreading fires makes the mistake concrete
        misread_spec = validate_cron(" ".join(tokens + ["*"]), KFP)
        start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

        def fires_that_day(spec: CronSpec) -> int:
            times = next_fire_times(spec, start - dt.timedelta(seconds=1), 86400)
            return sum(t < start + dt.timedelta(days=1) for t in times)

        misread += f", firing {fires_that_day(misread_spec)} times on 2030-01-01"
        if suggestion:
            misread += f" instead of {fires_that_day(validate_cron(suggestion, KFP))}"
    except CronError:
        pass
    fix = f" For the unix crontab meaning, write {suggestion!r}." if suggestion else ""
    raise CronError(
        f"cron {expression!r} has 5 fields, but KFP recurring runs take 6 with seconds first "
        f"(second minute hour day-of-month month day-of-week). {misread}.{fix} Or use --interval."
    )


def _explain_six_fields_on_vertex(expression: str, tokens: list[str], zone: str | None) -> None:
    prefix = f"TZ={zone} " if zone else ""
    rest = " ".join(tokens[1:]).replace("?", "*")
    if tokens[0] in ("0", "00"):
        fix = f" Drop the seconds field: {prefix + rest!r}."
    else:
        fix = f" Vertex AI schedules fire on whole minutes; drop the seconds field ({tokens[0]!r}): {prefix + rest!r}."
    raise CronError(
        f"cron {expression!r} has 6 fields (seconds first, KFP style), but Vertex AI takes the 5-field unix "
        f"crontab (minute hour day-of-month month day-of-week).{fix}"
    )


def next_fire_times(
    spec: CronSpec, after: dt.datetime, count: int = 3, horizon_years: int = 5
) -> list[dt.datetime]:
    """The next times a checked cron expression fires, in its time zone (UTC unless ``TZ=``).

    Args:
        spec: from :func:`validate_cron`.
        after: an aware datetime; times strictly after it are returned.
        count: how many.
        horizon_years: stop looking after this many years.
    Returns:
        Up to ``count`` aware datetimes, ascending.
    """
    if after.tzinfo is None:
        raise ValueError("next_fire_times needs an aware datetime (e.g. datetime.now(timezone.utc))")
    zone = zoneinfo.ZoneInfo(spec.timezone) if spec.timezone else dt.UTC
    if spec.every_seconds is not None:
        step = dt.timedelta(seconds=spec.every_seconds)
        return [after.astimezone(zone) + step * (i + 1) for i in range(count)]
    seconds, minutes, hours, doms, months, dows = (sorted(s) for s in spec._sets)
    dom_set, dow_set = set(doms), set(dows)
    local_after = after.astimezone(zone)
    day = local_after.date()
    out: list[dt.datetime] = []
    for _ in range(366 * horizon_years):
        if day.month in months:
            dom_ok = day.day in dom_set
            dow_ok = (day.isoweekday() % 7) in dow_set
            # Both cron dialects: if either day field is unrestricted both must match, else either may.
            day_ok = (dom_ok and dow_ok) if (spec._dom_star or spec._dow_star) else (dom_ok or dow_ok)
            if day_ok:
                for hour in hours:
                    for minute in minutes:
                        for second in seconds:
                            moment = dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)
                            if moment > local_after:
                                out.append(moment)
                                if len(out) == count:
                                    return out
        day += dt.timedelta(days=1)
    return out


def parse_interval(text: str | int) -> int:
    """Parse a KFP periodic-schedule interval: seconds (``3600``) or units (``6h``, ``1d12h``, ``90m``).

    Args:
        text: the interval; units ``s m h d w``.
    Returns:
        The interval in whole seconds (at least 1).
    Raises:
        CronError: if it does not parse or is not positive.
    """
    raw = str(text).strip().lower().replace(" ", "")
    if raw.isdigit():
        seconds = int(raw)
    elif raw and _INTERVAL_PART.sub("", raw) == "":
        seconds = sum(int(n) * _INTERVAL_UNIT_SECONDS[u] for n, u in _INTERVAL_PART.findall(raw))
    else:
        raise CronError(f"interval {text!r}: write seconds (3600) or units like '6h', '1d', '1h30m' (s, m, h, d, w)")
    if seconds < 1:
        raise CronError(f"interval {text!r} must be at least 1 second")
    return seconds
