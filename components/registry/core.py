"""One model-registry interface, two backends (Kubeflow Model Registry, Vertex AI Model Registry).

Plain Python: neither kfp nor TensorFlow is imported. The backends import their client only when opened
(:mod:`.kubeflow`: the ``model-registry`` client; :mod:`.vertex`: ``google.cloud.aiplatform_v1``).

Rules every backend follows:

* **Idempotent registration**: registering a URI already registered returns that version; a version name
  that exists with another URI is a :class:`RegistryConflict` naming the model, the version and both URIs.
  A client's own exception never escapes: it becomes a :class:`RegistryError` saying what was attempted.
* **Aliases** (``champion``, ``challenger``, ...) name one version each. Promotion history lives in the
  registry on each version (``champion_at``: when it last became champion; ``rolled_back``: it was rolled
  back from), so :func:`rollback` picks the previous champion from the registry, never from folder order:
  the most recent former champion that was not itself rolled back.
* **Promotion is one step**: ``deploy(version)`` (InferenceService patch or Vertex endpoint deploy) runs
  first; the alias moves only once the deployment is live, so the alias always names what serves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._json import json_safe

log = logging.getLogger(__name__)

BACKENDS = ("kubeflow", "vertex")
CHAMPION = "champion"
CHALLENGER = "challenger"
SCHEME = "model-registry://"
#: the model card section written by :func:`card_with_registry` (and read by the model server)
CARD_SECTION = "registry"
MODEL_FORMAT = "tensorflow"
MODEL_FORMAT_VERSION = "2"


class RegistryError(RuntimeError):
    """A registry request failed or was refused; the message names the model, version and registry."""


class RegistryConflict(RegistryError):
    """The version exists with different content (another URI): never overwritten."""


class NotFound(RegistryError):
    """The model, version or alias does not exist in the registry."""


@dataclasses.dataclass
class Version:
    """One registered model version, as every backend reports it.

    Attributes:
        model: registered model name.
        version: version name (Kubeflow: the name given; Vertex: the version id).
        uri: the model artifact's storage URI.
        aliases: aliases naming this version.
        lineage: the lineage record stored with it (see :func:`build_lineage`).
        champion_at: epoch seconds it last became champion (``None``: never).
        rolled_back: it was rolled back from (not a rollback target until promoted again).
        resource_name: backend id (Kubeflow: version id; Vertex: ``projects/.../models/M@V``).
        created: the backend's creation time (text, as the backend gives it).
    """

    model: str
    version: str
    uri: str
    aliases: list[str] = dataclasses.field(default_factory=list)
    lineage: dict[str, Any] = dataclasses.field(default_factory=dict)
    champion_at: float | None = None
    rolled_back: bool = False
    resource_name: str = ""
    created: str = ""

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view (for the CLI and artifact metadata)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Promotion:
    """What :func:`promote` / :func:`rollback` did."""

    model: str
    alias: str
    version: Version
    previous: Version | None
    deployed: dict[str, Any] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "alias": self.alias, "version": self.version.version,
                "uri": self.version.uri, "previous_version": self.previous.version if self.previous else "",
                "previous_uri": self.previous.uri if self.previous else "", "deployed": self.deployed}


class Registry:
    """The interface. Backends implement the underscored methods; callers use the public ones."""

    backend = ""

    def __init__(self, address: str):
        self.address = address

    # ---- backend primitives
    def models(self) -> list[str]:
        raise NotImplementedError

    def versions(self, name: str) -> list[Version]:
        """Every version of ``name`` (oldest first); ``NotFound`` when the model is not registered."""
        raise NotImplementedError

    def _create(self, name: str, version: str, uri: str, lineage: dict[str, Any]) -> Version:
        raise NotImplementedError

    def _set_state(self, name: str, version: Version, *, champion_at: float | None = None,
                   rolled_back: bool | None = None) -> None:
        raise NotImplementedError

    def _move_alias(self, name: str, alias: str, version: Version) -> None:
        raise NotImplementedError

    # ---- shared behaviour
    def get(self, name: str, ref: str) -> Version:
        """The version named ``ref`` or carrying alias ``ref``.

        Raises:
            NotFound: neither a version nor an alias of ``name``.
        """
        return _find(self, name, self.versions(name), ref)

    def alias(self, name: str, alias: str = CHAMPION) -> Version | None:
        """The version carrying ``alias`` (``None`` when no version does, or the model is not registered)."""
        try:
            versions = self.versions(name)
        except NotFound:
            return None
        return next((v for v in versions if alias in v.aliases), None)

    def register(self, name: str, uri: str, *, version: str = "", lineage: dict[str, Any] | None = None,
                 aliases: list[str] | tuple[str, ...] = ()) -> tuple[Version, bool]:
        """Register ``uri`` as a version of ``name`` (creating the model on first use). Idempotent.

        Args:
            name: registered model name.
            uri: the model's storage URI (a pushed, immutable version folder).
            version: version name; empty = the URI's ``v<N>`` folder name, else the next ``v<N>``.
            lineage: the lineage record (:func:`build_lineage`).
            aliases: aliases to give the new version (``champion`` goes through :func:`promote` instead).
        Returns:
            (the version, True when it was created now / False when it existed with this URI).
        Raises:
            RegistryConflict: ``version`` exists with another URI, or ``uri`` is registered as another version.
            RegistryError: the registry refused or could not be reached.
        """
        if not name:
            raise RegistryError("register: empty model name")
        if not uri:
            raise RegistryError(f"register model {name!r}: empty URI")
        try:
            existing = self.versions(name)
        except NotFound:
            existing = []
        same_uri = [v for v in existing if v.uri == uri]
        if same_uri and (not version or same_uri[0].version == version):
            log.info("model %s: %s is already registered as version %s", name, uri, same_uri[0].version)
            return same_uri[0], False
        version = version or default_version_name(uri, [v.version for v in existing])
        named = next((v for v in existing if v.version == version), None)
        if named is not None or same_uri:
            other = named or same_uri[0]
            raise RegistryConflict(
                f"model {name!r} version {other.version!r} in {self.backend} registry {self.address} is registered "
                f"with URI {other.uri!r}; refusing to register version {version!r} with URI {uri!r} "
                f"(versions are immutable: push the model as a new version)")
        created = self._create(name, version, uri, dict(lineage or {}))
        for alias in aliases:
            if alias == CHAMPION:
                raise RegistryError("register: give the champion alias with promote (it deploys and keeps history)")
            self._move_alias(name, alias, created)
            created = _moved(created, alias, None)
        return created, True


def default_version_name(uri: str, taken: list[str]) -> str:
    """``v<N>`` of a pushed version folder (``.../name/v3`` -> ``v3``) when free, else the next ``v<N>``."""
    tail = uri.rstrip("/").rsplit("/", 1)[-1]
    if re.fullmatch(r"v\d+", tail) and tail not in taken:
        return tail
    numbers = [int(t[1:]) for t in taken if re.fullmatch(r"v\d+", t)]
    return f"v{max(numbers, default=0) + 1}"


# ------------------------------------------------------------------ promotion and rollback

Deploy = Callable[[Version], dict[str, Any]]


def _find(registry: Registry, name: str, versions: list[Version], ref: str) -> Version:
    match = next((v for v in versions if v.version == ref), None) or next((v for v in versions if ref in v.aliases), None)
    if match is None:
        raise NotFound(f"model {name!r} in {registry.backend} registry {registry.address}: no version or alias {ref!r} "
                       f"(versions: {[v.version for v in versions]})")
    return match


def _moved(version: Version, alias: str, champion_at: float | None) -> Version:
    """``version`` as the registry now holds it (saves a re-read)."""
    return dataclasses.replace(version, aliases=sorted(set(version.aliases) | {alias}), rolled_back=False,
                               champion_at=champion_at if champion_at is not None else version.champion_at)


def promote(registry: Registry, name: str, ref: str, *, alias: str = CHAMPION, deploy: Deploy | None = None,
            clock: Callable[[], float] = time.time) -> Promotion:
    """Make version ``ref`` (a name or an alias) the ``alias`` of ``name``: deploy it, then move the alias.

    Args:
        registry: an opened registry.
        name: registered model name.
        ref: version name or alias to promote.
        alias: the alias to move (``champion`` also records promotion history).
        deploy: called with the version before the alias moves (InferenceService/endpoint update); its
            failure leaves the alias where it was.
        clock: time source (tests).
    Returns:
        The promotion (with the version that held the alias before).
    """
    versions = registry.versions(name)
    target = _find(registry, name, versions, ref)
    previous = next((v for v in versions if alias in v.aliases), None)
    deployed = deploy(target) if deploy else {}
    now = clock() if alias == CHAMPION else None
    if alias == CHAMPION:
        registry._set_state(name, target, champion_at=now, rolled_back=False)
    registry._move_alias(name, alias, target)
    log.info("model %s: %s -> version %s (was %s)", name, alias, target.version,
             previous.version if previous else "none")
    return Promotion(name, alias, _moved(target, alias, now), previous, deployed)


def rollback_target(versions: list[Version], current: Version | None) -> Version | None:
    """The previous champion: the most recent former champion, other than ``current``, not rolled back from."""
    candidates = [v for v in versions if v.champion_at is not None and not v.rolled_back
                  and (current is None or v.version != current.version)]
    return max(candidates, key=lambda v: v.champion_at, default=None)


def rollback(registry: Registry, name: str, *, deploy: Deploy | None = None,
             clock: Callable[[], float] = time.time) -> Promotion:
    """Give the champion alias back to the previous champion (from the registry's history) and deploy it.

    Raises:
        NotFound: no champion, or no earlier champion to return to.
    """
    versions = registry.versions(name)
    current = next((v for v in versions if CHAMPION in v.aliases), None)
    if current is None:
        raise NotFound(f"model {name!r} in {registry.backend} registry {registry.address}: no version has the "
                       f"{CHAMPION!r} alias; nothing to roll back")
    target = rollback_target(versions, current)
    if target is None:
        raise NotFound(f"model {name!r} in {registry.backend} registry {registry.address}: version "
                       f"{current.version!r} is the only champion on record; no previous champion to roll back to")
    deployed = deploy(target) if deploy else {}
    now = clock()
    registry._set_state(name, current, rolled_back=True)
    registry._set_state(name, target, champion_at=now, rolled_back=False)
    registry._move_alias(name, CHAMPION, target)
    log.info("model %s: rolled back champion %s -> %s", name, current.version, target.version)
    return Promotion(name, CHAMPION, _moved(target, CHAMPION, now), current, deployed)


# ------------------------------------------------------------------ lineage


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def build_lineage(
    *,
    card: dict[str, Any] | None = None,
    run_id: str = "",
    run_url: str = "",
    run_name: str = "",
    data: list[dict[str, Any]] | None = None,
    statistics: list[dict[str, Any]] | None = None,
    schema_path: str | os.PathLike | None = None,
    schema_uri: str = "",
    metrics: dict[str, Any] | None = None,
    blessing: dict[str, Any] | None = None,
    baseline_uri: str = "",
    baseline_version: str = "",
    images: dict[str, str] | None = None,
    code_version: str = "",
) -> dict[str, Any]:
    """The lineage record of one model version (stored in the registry, the model card and KFP metadata).

    Args:
        card: the model card (hyperparameters, training metrics, schema hash, kfpc version).
        run_id, run_url, run_name: the pipeline run that produced the model.
        data: ``[{"uri", ...metadata}]`` of the datasets it was trained/evaluated on.
        statistics: ``[{"uri", ...metadata}]`` of their statistics.
        schema_path: the schema file or folder (hashed); ``schema_uri`` names it.
        metrics: evaluation metrics.
        blessing: the blessing verdict metadata (``blessed``, thresholds...).
        baseline_uri, baseline_version: the served model it was compared with (and beat, when blessed).
        images: image references of the run (family -> image).
        code_version: kfpc version (default: the card's).
    Returns:
        A JSON-ready dict.
    """
    card = card or {}
    blessing = blessing or {}
    schema_hash = card.get("schema_hash") or ""
    if schema_path and Path(schema_path).exists():
        schema_hash = "sha256:" + _sha256(schema_path)
    return {
        "pipeline_run": {"id": run_id, "name": run_name, "url": run_url},
        "data": list(data or []),
        "statistics": list(statistics or []),
        "schema": {"uri": schema_uri, "hash": schema_hash},
        "evaluation": {"metrics": metrics or {}, "blessed": blessing.get("blessed"),
                       "verdicts": blessing.get("thresholds") or [],
                       "failed_thresholds": blessing.get("failed_thresholds") or []},
        "baseline": {"uri": baseline_uri, "version": baseline_version,
                     "beaten": bool(blessing.get("blessed")) and bool(baseline_uri or baseline_version)},
        "code_version": code_version or str(card.get("kfpc_version") or ""),
        "framework": str(card.get("framework") or ""),
        "images": dict(images or {}),
        "hyperparameters": json_safe(card.get("hyperparameters") or {}),
        "training_metrics": json_safe(card.get("metrics") or {}),
        # (evaluation metrics come from KFP metadata, which already holds no NaN)
    }


def card_with_registry(card: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """The model card with its ``registry`` section set (THE one writer of that section).

    Args:
        card: the model card.
        section: ``{"backend", "address", "model_name", "version", "uri", "aliases", "lineage"}``.
    Returns:
        A new card dict.
    """
    missing = [k for k in ("model_name", "version") if not section.get(k)]
    if missing:
        raise RegistryError(f"model card registry section: {missing} missing or empty")
    return dict(card, **{CARD_SECTION: dict(section)})


def registered_identity(card: Any) -> tuple[str, str]:
    """(registered model name, version) from a card's ``registry`` section; ("", "") when absent."""
    section = card.get(CARD_SECTION) if isinstance(card, dict) else None
    if not isinstance(section, dict):
        return "", ""
    return str(section.get("model_name") or ""), str(section.get("version") or "")


# ------------------------------------------------------------------ opening a registry and model-registry:// URIs


def open_registry(backend: str, address: str, **kwargs: Any) -> Registry:
    """Open the ``backend`` registry at ``address``.

    Args:
        backend: ``kubeflow`` (address ``http(s)://host[:port]``) or ``vertex``
            (address ``projects/<p>/locations/<l>``).
        address: where the registry is.
        kwargs: backend options (``author``, ``user_token``; ``credentials``, ``client_options``).
    """
    if backend == "kubeflow":
        from .kubeflow import KubeflowRegistry

        return KubeflowRegistry(address, **kwargs)
    if backend == "vertex":
        from .vertex import VertexRegistry

        return VertexRegistry(address, **kwargs)
    raise RegistryError(f"registry backend must be one of {BACKENDS}, got {backend!r}")


def parse_registry_uri(uri: str) -> tuple[str, str]:
    """``model-registry://name/version`` (KServe's form; the version may be an alias) -> (name, ref)."""
    if not uri.startswith(SCHEME):
        raise RegistryError(f"{uri!r} is not a {SCHEME}<model>/<version> URI")
    rest = uri[len(SCHEME):].strip("/")
    name, _, ref = rest.partition("/")
    if not name or not ref or "/" in ref:
        raise RegistryError(f"{uri!r}: expected {SCHEME}<model>/<version or alias>")
    return name, ref


def resolve_storage_uri(uri: str, registry: Registry) -> Version:
    """The registered version a ``model-registry://name/version`` URI names (its artifact URI is ``.uri``)."""
    name, ref = parse_registry_uri(uri)
    return registry.get(name, ref)


def dumps(record: Any) -> str:
    """Stable JSON text of a record (for custom properties and files)."""
    return json.dumps(record, sort_keys=True, default=str)


# ------------------------------------------------------------------ the pipeline step


REGISTRY_FILE = "registry.json"


def _read_card(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The model card (the one place this package reads it: repoint to the contract module when it lands)."""
    from ..contract import read_card as read_model_card

    return read_model_card(model_dir)


def _baseline_version(registry: Registry, name: str, baseline_uri: str) -> str:
    """The registered version whose URI is ``baseline_uri`` ("" when it is not registered)."""
    if not baseline_uri:
        return ""
    try:
        versions = registry.versions(name)
    except NotFound:
        return ""
    return next((v.version for v in versions if v.uri.rstrip("/") == baseline_uri.rstrip("/")), "")


def register_pushed_model(
    model_dir: str | os.PathLike,
    *,
    backend: str,
    address: str,
    name: str,
    uri: str,
    version: str = "",
    aliases: list[str] | tuple[str, ...] = (),
    champion: bool = False,
    lineage_inputs: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Register a pushed model with its lineage, optionally make it champion, and write the record.

    Args:
        model_dir: the Model artifact (its card gives hyperparameters, training metrics, schema hash).
        backend, address: the registry (see :func:`open_registry`).
        name: registered model name.
        uri: the pushed, immutable copy to register.
        version: version name; empty = the pushed folder's ``v<N>``.
        aliases: aliases for the new version other than champion (e.g. ``challenger``).
        champion: make it champion (alias + history; nothing is redeployed: push has deployed it).
        lineage_inputs: keyword arguments of :func:`build_lineage` except ``card``; ``baseline_version`` is
            looked up in the registry from ``baseline_uri`` when not given.
        output_dir: where to write ``registry.json`` and ``model_card.json`` (the card with its registry section).
        registry: an opened registry (tests); default opens ``backend`` at ``address``.
    Returns:
        The registry section: backend, address, model_name, version, uri, aliases, created, lineage (+
        ``vertex_model`` for Vertex).
    """
    from .._fs import atomic_dir

    if output_dir is not None and Path(output_dir).exists() and any(Path(output_dir).iterdir()):
        raise RegistryError(f"output_dir {output_dir} is not empty")
    card = _read_card(model_dir)
    registry = registry or open_registry(backend, address)
    inputs = dict(lineage_inputs or {})
    if not inputs.get("baseline_version"):
        inputs["baseline_version"] = _baseline_version(registry, name, inputs.get("baseline_uri", ""))
    lineage = build_lineage(card=card, **inputs)
    registered, created = registry.register(name, uri, version=version, lineage=lineage,
                                            aliases=[a for a in aliases if a and a != CHAMPION])
    if champion or CHAMPION in aliases:
        registered = promote(registry, name, registered.version).version
    section = {"backend": registry.backend, "address": registry.address, "model_name": name,
               "version": registered.version, "uri": registered.uri, "aliases": registered.aliases,
               "created": created, "resource_name": registered.resource_name,
               "lineage": registered.lineage or lineage}
    if registry.backend == "vertex":
        section["vertex_model"] = registry.vertex_model(registered)
    if output_dir is not None:
        with atomic_dir(output_dir) as scratch:
            (scratch / REGISTRY_FILE).write_text(json.dumps(section, indent=2, default=str))
            from .. import types

            (scratch / types.MODEL_CARD_FILE).write_text(
                json.dumps(card_with_registry(card, section), indent=2, default=str))
    return section
