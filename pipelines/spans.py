"""Find the newest data span and the one before it, for scheduled retraining (TFX's ``{SPAN}`` convention).

Data that arrives over time is laid out one span per folder or file, the span number in the name::

    gs://bucket/churn/span-{SPAN}/data.csv      ->  span-1/data.csv, span-2/data.csv, ...
    /data/churn/export-{SPAN}.parquet            ->  export-20250101.parquet, export-20250102.parquet

A span counts only once its file exists (a folder still being written is skipped). ``gs://`` URIs are read
through the Cloud Storage FUSE mount (``/gcs/<bucket>``), like every kfpc component. No kfp import here.
"""

from __future__ import annotations

import dataclasses
import os
import re

from kfpc.components._fs import local_path

SPAN = "{SPAN}"


class SpanError(ValueError):
    """The pattern is malformed or matches no span; the message names the pattern and the folder."""


@dataclasses.dataclass(frozen=True)
class Spans:
    """The newest span and its predecessor.

    Attributes:
        latest_uri: URI of the newest span's data (the pattern with the span filled in).
        latest_span: its number.
        previous_uri: URI of the span before it; the newest one again when it is the only span.
        previous_span: its number (equal to ``latest_span`` when there is a single span).
    """

    latest_uri: str
    latest_span: int
    previous_uri: str
    previous_span: int

    @property
    def has_previous(self) -> bool:
        """Whether an older span exists to compare against."""
        return self.previous_span != self.latest_span


def resolve_spans(pattern: str) -> Spans:
    """Find the two newest complete spans matching ``pattern``.

    Args:
        pattern: a URI or path with ``{SPAN}`` in exactly one path segment, e.g.
            ``gs://bucket/data/span-{SPAN}/data.csv``. Without ``{SPAN}`` the URI is one span (number 0).
    Returns:
        :class:`Spans`.
    Raises:
        SpanError: ``{SPAN}`` used twice or in the bucket/root, the folder is missing, or no span is complete.
    """
    if SPAN not in pattern:
        return Spans(pattern, 0, pattern, 0)
    segments = pattern.split("/")
    holders = [i for i, segment in enumerate(segments) if SPAN in segment]
    if len(holders) != 1 or segments[holders[0]].count(SPAN) != 1:
        raise SpanError(f"span pattern {pattern!r}: put {SPAN} exactly once, in one folder or file name")
    index = holders[0]
    parent_uri = "/".join(segments[:index])
    if pattern.startswith("gs://") and index < 3:
        raise SpanError(f"span pattern {pattern!r}: {SPAN} cannot be part of the bucket name")
    rest = segments[index + 1:]
    prefix, suffix = segments[index].split(SPAN)
    matcher = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
    parent = local_path(parent_uri) or "/"
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        raise SpanError(f"span pattern {pattern!r}: folder {parent_uri or '/'} does not exist") from None
    found: dict[int, str] = {}
    for entry in entries:
        match = matcher.match(entry)
        if not match:
            continue
        uri = "/".join([parent_uri, entry, *rest])
        if os.path.isfile(local_path(uri)):
            number = int(match.group(1))
            if number in found:
                raise SpanError(f"span pattern {pattern!r}: span {number} appears twice ({found[number]}, {uri})")
            found[number] = uri
    if not found:
        raise SpanError(f"span pattern {pattern!r}: no complete span in {parent_uri or '/'} "
                        f"(expected names like {prefix}1{suffix}{'/' + '/'.join(rest) if rest else ''})")
    ordered = sorted(found)
    latest = ordered[-1]
    previous = ordered[-2] if len(ordered) > 1 else latest
    return Spans(found[latest], latest, found[previous], previous)


def resolve_baseline(baseline_model_uri: str, serving_root: str, model_name: str) -> str:
    """The URI of the model now served: the one given, else the newest version kfpc pushed.

    Args:
        baseline_model_uri: explicit URI (wins when not empty).
        serving_root: where kfpc pushes versioned models (``<root>/<name>/v<N>``).
        model_name: the model's folder under the root.
    Returns:
        The baseline URI.
    Raises:
        SpanError: nothing is served yet: retraining compares against a served model, so the first model
            comes from ``training_pipeline``.
    """
    if baseline_model_uri:
        return baseline_model_uri
    from kfpc.components.push import storage

    latest = storage.latest_version(serving_root, model_name) if serving_root else ""
    if not latest:
        raise SpanError(
            f"no served model to compare against: nothing pushed under serving_root {serving_root!r} for "
            f"model_name {model_name!r} and no baseline_model_uri given; deploy a first model with "
            f"training_pipeline, or pass baseline_model_uri"
        )
    return latest
