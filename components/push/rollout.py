"""Create or update an InferenceService, canary it, wait for Ready, promote, and roll back on failure.

The rollout talks to the cluster only through an object with ``get / create / patch / delete`` (an
:class:`kfpc.components.push.kube.IsvcClient`), so the same code runs against a real API server, the test
fake, and the dry-run recorder.

Rules:

* A new InferenceService is created at 100% (there is nothing to canary against). If it never becomes
  Ready it is deleted again: a failed push leaves nothing behind.
* An existing one is patched (JSON merge patch conditioned on the ``resourceVersion`` that was read). With a
  canary percentage, Knative mode sets ``predictor.canaryTrafficPercent`` (Knative keeps the previous
  revision for the rest); Standard mode keeps ``spec.predictor`` and adds the new model as ``spec.canary``.
* Ready means the ``Ready`` condition is True **for the patched generation** (``status.observedGeneration``):
  a Ready left over from the previous spec does not count.
* On timeout or a failed load the previous spec, labels and annotations are restored and the task fails.
* ``promote`` moves the canary to 100% after it is Ready.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from kfpc.components.push import manifest

log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 3
#: transition states KServe reports for a model that will not load without a spec change
_FAILED_TRANSITIONS = {"InvalidSpec", "BlockedByFailedLoad"}


class RolloutError(RuntimeError):
    """The new model did not become Ready; the message says what was restored."""


@dataclasses.dataclass
class RolloutResult:
    """Outcome of a rollout.

    Attributes:
        endpoint_url: ``status.url`` of the InferenceService.
        previous_model_uri: the model URI that was taking the traffic before ("" for a new service).
        action: ``created`` | ``updated`` | ``canary`` | ``promoted``.
        traffic_percent: share of traffic the new model gets now.
        isvc: the InferenceService as last read.
    """

    endpoint_url: str
    previous_model_uri: str
    action: str
    traffic_percent: int
    isvc: dict[str, Any]


def _ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return {}


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready=True and the status describes the current generation."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    if generation is not None and status.get("observedGeneration", -1) < generation:
        return False
    return _ready_condition(obj).get("status") == "True"


def _failed_load(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    if generation is not None and status.get("observedGeneration", -1) < generation:
        return ""
    model_status = status.get("modelStatus") or {}
    if model_status.get("transitionStatus") in _FAILED_TRANSITIONS:
        failure = model_status.get("lastFailureInfo") or {}
        return f"{model_status['transitionStatus']}: {failure.get('message') or failure.get('reason') or ''}".strip()
    return ""


def wait_ready(
    client,
    namespace: str,
    name: str,
    timeout_s: float,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the InferenceService is Ready for its current generation.

    Args:
        client: ``get(namespace, name)``.
        namespace, name: the InferenceService.
        timeout_s: give up after this many seconds.
        poll_s: seconds between reads.
    Returns:
        The Ready object.
    Raises:
        RolloutError: timeout, a failed model load, or the object vanished.
    """
    deadline = clock() + timeout_s
    while True:
        obj = client.get(namespace, name)
        if obj is None:
            raise RolloutError(f"inferenceservice {namespace}/{name} disappeared while waiting for Ready")
        if is_ready(obj):
            return obj
        failure = _failed_load(obj)
        if failure:
            raise RolloutError(f"inferenceservice {namespace}/{name} failed to load the model ({failure})")
        if clock() >= deadline:
            condition = _ready_condition(obj)
            detail = condition.get("message") or condition.get("reason") or "no Ready condition reported"
            raise RolloutError(
                f"inferenceservice {namespace}/{name} not Ready after {timeout_s:g} s "
                f"(generation {obj['metadata'].get('generation')}, observed "
                f"{(obj.get('status') or {}).get('observedGeneration')}): {detail}"
            )
        sleep(poll_s)


def _patch_towards(current: dict[str, Any], target: dict[str, Any], *, restore: bool = False) -> dict[str, Any]:
    """The conditional merge patch turning ``current`` into ``target``.

    Labels and annotations: only our keys (and KServe's deployment mode) are set, other tools' keys are
    left alone, except when restoring, where the saved metadata is put back exactly.
    """
    meta_now = current.get("metadata") or {}
    meta_target = target.get("metadata") or {}
    patch: dict[str, Any] = {"metadata": {"resourceVersion": meta_now.get("resourceVersion")}}
    for key in ("labels", "annotations"):
        now = meta_now.get(key) or {}
        want = meta_target.get(key) or {}
        if restore:
            sub = manifest.merge_patch(now, want)
        else:
            ours = {manifest.PREVIOUS_URI_ANNOTATION, manifest.MODEL_URI_ANNOTATION, manifest.MODEL_VERSION_LABEL}
            sub = {k: v for k, v in want.items() if now.get(k) != v}
            sub.update({k: None for k in ours if k in now and k not in want})
        if sub:
            patch["metadata"][key] = sub
    spec_patch = manifest.merge_patch(current.get("spec") or {}, target.get("spec") or {})
    if spec_patch:
        patch["spec"] = spec_patch
    return patch


def _apply(client, namespace: str, name: str, build_target: Callable[[dict[str, Any]], dict[str, Any]]):
    """Read, compute the target from what was read, patch conditionally; re-read and retry on 409."""
    from kfpc.components.push.kube import Conflict

    for attempt in range(_CONFLICT_RETRIES):
        current = client.get(namespace, name)
        if current is None:
            raise RolloutError(f"inferenceservice {namespace}/{name} was deleted during the rollout")
        patch = _patch_towards(current, build_target(current))
        if patch == {"metadata": {"resourceVersion": current["metadata"].get("resourceVersion")}}:
            return current, current  # already as wanted (a re-run of the same push): no write
        try:
            return current, client.patch(namespace, name, patch)
        except Conflict:
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            log.warning("inferenceservice %s/%s changed while patching; re-reading", namespace, name)
    raise AssertionError("unreachable")


def _restore(client, namespace: str, name: str, previous: dict[str, Any]) -> str:
    """Put back the spec, labels and annotations of ``previous``; returns what happened, for the error."""
    try:
        for attempt in range(_CONFLICT_RETRIES):
            current = client.get(namespace, name)
            if current is None:
                return "the service was deleted meanwhile; nothing restored"
            from kfpc.components.push.kube import Conflict

            try:
                client.patch(namespace, name, _patch_towards(current, previous, restore=True))
                return f"previous spec restored (model {manifest.served_model_uri(previous) or 'unknown'})"
            except Conflict:
                if attempt == _CONFLICT_RETRIES - 1:
                    raise
    except Exception as err:  # the original failure stays the reason the task fails; report this one too
        return f"restoring the previous spec FAILED: {err}"
    return "restoring the previous spec FAILED: conflicts"


def rollout(
    client,
    desired: dict[str, Any],
    opts: manifest.ServingOptions,
    *,
    canary_traffic_percent: int | None = None,
    promote: bool = False,
    timeout_s: float = 600.0,
    poll_s: float = 2.0,
) -> RolloutResult:
    """Deploy ``desired`` (an InferenceService from :func:`manifest.render`) and wait until it serves.

    Args:
        client: an ``IsvcClient`` (or anything with its ``get / create / patch / delete``).
        desired: the InferenceService serving the new model at 100%.
        opts: the serving options ``desired`` was rendered from.
        canary_traffic_percent: 1..99 to send only that share to the new model; ``None`` = 100%.
        promote: after the canary is Ready, move it to 100%.
        timeout_s: per step (create/patch, promote) wait for Ready.
        poll_s: seconds between status reads.
    Returns:
        The endpoint, the previously served model URI and what was done.
    Raises:
        RolloutError: not Ready in time or the load failed (previous spec restored / new service deleted).
        kube.KubeError: the API server refused a request (nothing was changed by that request).
        manifest.ManifestError: the existing service uses another deployment mode.
    """
    namespace, name = opts.namespace, opts.name
    if canary_traffic_percent is not None:
        manifest._check_percent(canary_traffic_percent)
    current = client.get(namespace, name)

    if current is None:
        if canary_traffic_percent is not None:
            log.info("inferenceservice %s/%s does not exist yet: creating it at 100%% (no canary)", namespace, name)
        client.create(desired)
        try:
            ready = wait_ready(client, namespace, name, timeout_s, poll_s)
        except RolloutError as err:
            client.delete(namespace, name)
            raise RolloutError(f"{err}; the new inferenceservice was deleted again") from err
        return RolloutResult(_url(ready), "", "created", 100, ready)

    current_mode = ((current.get("metadata") or {}).get("annotations") or {}).get(manifest.DEPLOYMENT_MODE_ANNOTATION)
    if current_mode and manifest.canonical_mode(current_mode) != opts.mode:
        raise manifest.ManifestError(
            f"inferenceservice {namespace}/{name} runs in deployment mode {current_mode!r}; KServe does not allow "
            f"changing it to {opts.deployment_mode!r}. Delete the service or use another name."
        )
    previous = copy.deepcopy(current)
    previous_uri = manifest.served_model_uri(previous)

    def step(build_target: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        _apply(client, namespace, name, build_target)
        try:
            return wait_ready(client, namespace, name, timeout_s, poll_s)
        except RolloutError as err:
            raise RolloutError(f"{err}; {_restore(client, namespace, name, previous)}") from err

    if canary_traffic_percent is None:
        ready = step(lambda _now: desired)
        return RolloutResult(_url(ready), previous_uri, "updated", 100, ready)

    if opts.mode == manifest.KNATIVE:
        ready = step(lambda _now: manifest.knative_canary(desired, canary_traffic_percent, previous_uri))
    else:
        ready = step(lambda _now: manifest.standard_canary(desired, previous, canary_traffic_percent))
    if not promote:
        return RolloutResult(_url(ready), previous_uri, "canary", canary_traffic_percent, ready)
    ready = step(lambda _now: desired)
    return RolloutResult(_url(ready), previous_uri, "promoted", 100, ready)


def _url(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    return status.get("url") or (status.get("address") or {}).get("url") or ""
