"""Create or update an InferenceService, canary it, bake it, promote it, and roll back on failure.

The rollout talks to the cluster only through an object with ``get / create / patch / delete`` (an
:class:`kfpc.components.push.kube.IsvcClient`), so the same code runs against a real API server, the test
fake, and the dry-run recorder.

Rules:

* **Optimistic concurrency.** Every write is a JSON merge patch carrying the ``metadata.resourceVersion`` of
  the object the decision was based on; the API server answers 409 when the object changed since. On a 409
  the object is re-read: if only its status or other tools' metadata moved (same ``uid`` and
  ``generation``), the same change is retried on the fresh version; if its spec changed (another push),
  the rollout stops with :class:`RolloutConflict` naming both versions and writes nothing more.
* **Readiness is judged on what this push wrote**: ``Ready=True``, ``status.observedGeneration`` at least
  the generation our write returned, and the live spec still serving the storage URI(s) and traffic split
  we wrote. A spec changed by someone else while we wait is a :class:`RolloutConflict` (and nothing is
  rolled back over their change).
* A new InferenceService is created at 100% (there is nothing to canary against). If it never becomes
  Ready it is deleted again (conditionally: only while it is still the object we created).
* With a canary percentage, Knative mode sets ``predictor.canaryTrafficPercent``; Standard mode keeps
  ``spec.predictor`` and adds the new model as ``spec.canary``.
* ``promote``: the canary bakes (:mod:`kfpc.components.push.canary`: error rate and p99 latency within
  thresholds for ``bake_s`` seconds) and only then takes 100%.
* On timeout, a failed load or a failed bake the previous spec, labels and annotations are restored and the
  restore is verified like a rollout (generation + storage URI live and Ready); the task fails either way.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from kfpc.components import _progress as progress
from kfpc.components.push import canary as canary_mod
from kfpc.components.push import kube, manifest

log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 5
#: transition states KServe reports for a model that will not load without a spec change
_FAILED_TRANSITIONS = {"InvalidSpec", "BlockedByFailedLoad"}


class RolloutError(RuntimeError):
    """The new model did not become Ready or failed its bake; the message says what was restored."""


class RolloutConflict(RolloutError):
    """Another writer changed the InferenceService during this push; nothing of theirs was overwritten."""


@dataclasses.dataclass
class RolloutResult:
    """Outcome of a rollout.

    Attributes:
        endpoint_url: ``status.url`` of the InferenceService.
        previous_model_uri: the model URI that was taking the traffic before ("" for a new service).
        action: ``created`` | ``updated`` | ``canary`` | ``promoted``.
        traffic_percent: share of traffic the new model gets now.
        isvc: the InferenceService as last read.
        canary_sample: the canary metrics the promotion was decided on (``None`` without a bake).
    """

    endpoint_url: str
    previous_model_uri: str
    action: str
    traffic_percent: int
    isvc: dict[str, Any]
    canary_sample: canary_mod.Sample | None = None


def _ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return {}


def live_signature(obj: dict[str, Any] | None) -> tuple:
    """What a push decides about an InferenceService: the predictor's storage URI, its Knative canary
    percentage and the Standard-mode canaries ``(storage URI, trafficPercent)``."""
    spec = (obj or {}).get("spec") or {}
    predictor = spec.get("predictor") or {}
    percent = predictor.get("canaryTrafficPercent")
    canaries = tuple(
        (manifest.storage_uri_of(entry.get("predictor")), entry.get("trafficPercent"))
        for entry in spec.get("canary") or []
    )
    return manifest.storage_uri_of(predictor), None if percent == 100 else percent, canaries


def _describe(signature: tuple) -> str:
    uri, percent, canaries = signature
    text = uri or "no model"
    if percent is not None:
        text += f" (canaryTrafficPercent {percent})"
    for c_uri, c_percent in canaries:
        text += f" + canary {c_uri} at {c_percent}%"
    return text


def _meta(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("metadata") or {}


@dataclasses.dataclass(frozen=True)
class Written:
    """What one of our writes left: the object's uid, the generation the API server gave it, the signature."""

    uid: str
    generation: int
    resource_version: str
    signature: tuple

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Written:
        meta = _meta(obj)
        return cls(meta.get("uid") or "", int(meta.get("generation") or 0), str(meta.get("resourceVersion")),
                   live_signature(obj))


def _changed_by_others(namespace: str, name: str, ours: Written, now: dict[str, Any] | None, doing: str) -> str:
    """Why ``now`` is no longer the object we wrote or read (``""`` when it still is)."""
    if now is None:
        return f"inferenceservice {namespace}/{name} was deleted by another writer {doing}"
    meta = _meta(now)
    if ours.uid and meta.get("uid") and meta.get("uid") != ours.uid:
        return f"inferenceservice {namespace}/{name} was deleted and re-created by another writer {doing}"
    generation = int(meta.get("generation") or 0)
    if generation != ours.generation and live_signature(now) != ours.signature:
        return (
            f"inferenceservice {namespace}/{name} was changed by another writer {doing}: this push's version is "
            f"resourceVersion {ours.resource_version} (generation {ours.generation}, {_describe(ours.signature)}), "
            f"the live one is resourceVersion {meta.get('resourceVersion')} (generation {generation}, "
            f"{_describe(live_signature(now))}); not overwriting it"
        )
    return ""


def is_ready(obj: dict[str, Any], generation: int | None = None) -> bool:
    """Ready=True and the status describes ``generation`` (default: the object's current generation)."""
    status = obj.get("status") or {}
    if generation is None:
        generation = _meta(obj).get("generation")
    if generation is not None and (status.get("observedGeneration") or -1) < generation:
        return False
    return _ready_condition(obj).get("status") == "True"


def _failed_load(obj: dict[str, Any], generation: int) -> str:
    status = obj.get("status") or {}
    if (status.get("observedGeneration") or -1) < generation:
        return ""
    model_status = status.get("modelStatus") or {}
    if model_status.get("transitionStatus") in _FAILED_TRANSITIONS:
        failure = model_status.get("lastFailureInfo") or {}
        return f"{model_status['transitionStatus']}: {failure.get('message') or failure.get('reason') or ''}".strip()
    return ""


def wait_live(
    client,
    namespace: str,
    name: str,
    written: Written,
    timeout_s: float,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until what ``written`` describes is live: Ready, observed at its generation, its spec in place.

    Args:
        client: ``get(namespace, name)``.
        namespace, name: the InferenceService.
        written: our write (uid, the generation it returned, the storage URIs / split it set).
        timeout_s: give up after this many seconds.
        poll_s: seconds between reads.
    Returns:
        The Ready object.
    Raises:
        RolloutConflict: another writer replaced our spec (or deleted the service) meanwhile.
        RolloutError: timeout or a failed model load.
    """
    deadline = clock() + timeout_s
    while True:
        obj = client.get(namespace, name)
        conflict = _changed_by_others(namespace, name, written, obj, "while this push waited for Ready")
        if conflict:
            raise RolloutConflict(conflict)
        live = live_signature(obj) == written.signature
        if live and is_ready(obj, written.generation):
            return obj
        failure = _failed_load(obj, written.generation)
        if failure:
            raise RolloutError(f"inferenceservice {namespace}/{name} failed to load the model ({failure})")
        if clock() >= deadline:
            condition = _ready_condition(obj)
            detail = condition.get("message") or condition.get("reason") or "no Ready condition reported"
            raise RolloutError(
                f"inferenceservice {namespace}/{name} not Ready after {timeout_s:g} s "
                f"(generation {written.generation} written, observed "
                f"{(obj.get('status') or {}).get('observedGeneration')}): {detail}"
            )
        waited = timeout_s - (deadline - clock())
        progress.emit("push", f"waiting for {namespace}/{name} to be Ready: {waited:.0f} s of at most "
                      f"{timeout_s:g} s ({_ready_condition(obj).get('reason') or 'not reported yet'})")
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


def _write(client, namespace: str, name: str, base: dict[str, Any], build_target, *, restore: bool = False) -> Written:
    """Patch ``base`` (the object the decision was made on) towards ``build_target(base)``, conditionally.

    A 409 is retried only when the object's spec did not move (same uid and generation: a status update or
    another tool's label); otherwise it is a :class:`RolloutConflict`.
    """
    current = base
    base_meta = _meta(base)
    for _attempt in range(_CONFLICT_RETRIES):
        patch = _patch_towards(current, build_target(current), restore=restore)
        if patch == {"metadata": {"resourceVersion": _meta(current).get("resourceVersion")}}:
            return Written.of(current)  # already as wanted (a re-run of the same push): no write
        try:
            return Written.of(client.patch(namespace, name, patch))
        except kube.Conflict as err:
            fresh = client.get(namespace, name)
            fresh_meta = _meta(fresh)
            if (fresh is None or fresh_meta.get("uid") != base_meta.get("uid")
                    or fresh_meta.get("generation") != base_meta.get("generation")):
                raise RolloutConflict(
                    f"inferenceservice {namespace}/{name} was changed by another writer after this push read it "
                    f"at resourceVersion {base_meta.get('resourceVersion')} (generation {base_meta.get('generation')}, "
                    f"{_describe(live_signature(base))}); it is now "
                    + ("deleted" if fresh is None else
                       f"at resourceVersion {fresh_meta.get('resourceVersion')} (generation "
                       f"{fresh_meta.get('generation')}, {_describe(live_signature(fresh))})")
                    + f"; not overwriting it (the API server answered: {err})"
                ) from None
            log.info("inferenceservice %s/%s: resourceVersion %s -> %s without a spec change; retrying",
                     namespace, name, _meta(current).get("resourceVersion"), fresh_meta.get("resourceVersion"))
            current = fresh
    raise RolloutConflict(
        f"inferenceservice {namespace}/{name}: {_CONFLICT_RETRIES} conditional patches refused (409) although "
        f"its spec did not change (last resourceVersion {_meta(current).get('resourceVersion')}); nothing written"
    )


def _restore(client, namespace: str, name: str, previous: dict[str, Any], ours: Written, timeout_s: float,
             poll_s: float) -> str:
    """Put back the spec, labels and annotations of ``previous`` and wait until it is live again.

    Nothing is restored over another writer's change. Returns what happened, for the error message.
    """
    want = live_signature(previous)
    try:
        current = client.get(namespace, name)
        why = _changed_by_others(namespace, name, ours, current, "during this push")
        if why:
            return f"previous spec NOT restored: {why}"
        written = _write(client, namespace, name, current, lambda _now: previous, restore=True)
        wait_live(client, namespace, name, written, timeout_s, poll_s)
        return (f"previous spec restored and verified live (generation {written.generation}, "
                f"{_describe(want)})")
    except RolloutError as err:
        return f"previous spec restored but NOT verified live ({_describe(want)}): {err}"
    except Exception as err:  # the original failure stays the reason the task fails; report this one too
        return f"restoring the previous spec FAILED: {err}"


def _delete_own(client, namespace: str, name: str, ours: Written) -> str:
    """Delete the service we created, only while it is still ours (uid + resourceVersion preconditions)."""
    try:
        current = client.get(namespace, name)
        why = _changed_by_others(namespace, name, ours, current, "after this push created it")
        if why:
            return f"it was NOT deleted: {why}"
        client.delete(namespace, name, uid=_meta(current).get("uid"),
                      resource_version=_meta(current).get("resourceVersion"))
        return "the new inferenceservice was deleted again"
    except kube.KubeError as err:
        return f"deleting the new inferenceservice FAILED: {err}"


def rollout(
    client,
    desired: dict[str, Any],
    opts: manifest.ServingOptions,
    *,
    canary_traffic_percent: int | None = None,
    promote: bool = False,
    timeout_s: float = 600.0,
    poll_s: float = 2.0,
    canary_source: Callable[[dict[str, Any]], Any] | None = None,
    thresholds: canary_mod.Thresholds | None = None,
) -> RolloutResult:
    """Deploy ``desired`` (an InferenceService from :func:`manifest.render`) and wait until it serves.

    Args:
        client: an ``IsvcClient`` (or anything with its ``get / create / patch / delete``).
        desired: the InferenceService serving the new model at 100%.
        opts: the serving options ``desired`` was rendered from.
        canary_traffic_percent: 1..99 to send only that share to the new model; ``None`` = 100%.
        promote: after the canary is Ready and has baked within ``thresholds``, move it to 100%.
        timeout_s: per step (create/patch, promote, restore) wait for Ready; also how long a bake short of
            ``min_requests`` may run past ``bake_s``.
        poll_s: seconds between status / metrics reads.
        canary_source: given the Ready canary object, returns the metrics source (``sample(window_s)``, see
            :mod:`~kfpc.components.push.canary`); required for ``promote`` with a canary.
        thresholds: the bake's limits (default :class:`canary.Thresholds`).
    Returns:
        The endpoint, the previously served model URI and what was done.
    Raises:
        RolloutConflict: another writer changed the service during the push (their change is kept).
        RolloutError: not Ready in time, the load failed or the canary failed its bake (previous spec
            restored and verified / new service deleted; the message says which).
        kube.KubeError: the API server refused a request (nothing was changed by that request).
        manifest.ManifestError: the existing service uses another deployment mode.
    """
    namespace, name = opts.namespace, opts.name
    if canary_traffic_percent is not None:
        manifest._check_percent(canary_traffic_percent)
    thresholds = thresholds or canary_mod.Thresholds()
    current = client.get(namespace, name)

    if current is None:
        if canary_traffic_percent is not None:
            log.info("inferenceservice %s/%s does not exist yet: creating it at 100%% (no canary)", namespace, name)
        try:
            written = Written.of(client.create(desired))
        except kube.Conflict as err:
            raise RolloutConflict(
                f"inferenceservice {namespace}/{name} was created by another writer after this push found it "
                f"absent; not overwriting it ({err})"
            ) from None
        try:
            ready = wait_live(client, namespace, name, written, timeout_s, poll_s)
        except RolloutConflict:
            raise
        except RolloutError as err:
            raise RolloutError(f"{err}; {_delete_own(client, namespace, name, written)}") from err
        return RolloutResult(_url(ready), "", "created", 100, ready)

    current_mode = (_meta(current).get("annotations") or {}).get(manifest.DEPLOYMENT_MODE_ANNOTATION)
    if current_mode and manifest.canonical_mode(current_mode) != opts.mode:
        raise manifest.ManifestError(
            f"inferenceservice {namespace}/{name} runs in deployment mode {current_mode!r}; KServe does not allow "
            f"changing it to {opts.deployment_mode!r}. Delete the service or use another name."
        )
    if promote and canary_traffic_percent is not None and canary_source is None:
        raise ValueError("promote after a canary needs a metrics source to bake the canary "
                         "(a Prometheus URL or the canary's /metrics URL); nothing was written")
    previous = copy.deepcopy(current)
    previous_uri = manifest.served_model_uri(previous)

    def step(base: dict[str, Any], build_target) -> tuple[dict[str, Any], Written]:
        written = _write(client, namespace, name, base, build_target)
        try:
            return wait_live(client, namespace, name, written, timeout_s, poll_s), written
        except RolloutConflict:
            raise
        except RolloutError as err:
            raise RolloutError(f"{err}; {_restore(client, namespace, name, previous, written, timeout_s, poll_s)}") from err

    if canary_traffic_percent is None:
        ready, _ = step(current, lambda _now: desired)
        return RolloutResult(_url(ready), previous_uri, "updated", 100, ready)

    if opts.mode == manifest.KNATIVE:
        ready, written = step(current, lambda _now: manifest.knative_canary(desired, canary_traffic_percent, previous_uri))
    else:
        ready, written = step(current, lambda _now: manifest.standard_canary(desired, previous, canary_traffic_percent))
    if not promote:
        return RolloutResult(_url(ready), previous_uri, "canary", canary_traffic_percent, ready)

    try:
        sample = canary_mod.bake(canary_source(ready), thresholds, extra_wait_s=timeout_s, poll_s=poll_s)
    except canary_mod.CanaryFailed as err:
        restored = _restore(client, namespace, name, previous, written, timeout_s, poll_s)
        raise RolloutError(f"inferenceservice {namespace}/{name}: canary rolled back: {err}; {restored}") from err
    log.info("inferenceservice %s/%s: canary baked (%s); promoting", namespace, name, sample.describe())
    ready, _ = step(ready, lambda _now: desired)
    return RolloutResult(_url(ready), previous_uri, "promoted", 100, ready, sample)


def _url(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    return status.get("url") or (status.get("address") or {}).get("url") or ""
