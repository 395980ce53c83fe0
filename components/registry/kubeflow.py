"""Kubeflow Model Registry backend, through the ``model-registry`` Python client.

A version is a ``ModelVersion`` (name ``v<N>``) with one ``ModelArtifact`` (the storage URI, format
``tensorflow`` / ``2``: a SavedModel). Kubeflow Model Registry has no aliases: they are custom properties of
the ``RegisteredModel`` (``kfpc.alias.<alias>`` = version name); promotion history and the lineage record are
custom properties of each version (``kfpc.champion_at``, ``kfpc.rolled_back``, ``kfpc.lineage`` and a few
flat keys that the registry UI can show and filter on).
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any
from urllib.parse import urlsplit

from .core import MODEL_FORMAT, MODEL_FORMAT_VERSION, NotFound, Registry, RegistryError, Version, dumps

log = logging.getLogger(__name__)

ALIAS_PREFIX = "kfpc.alias."
LINEAGE = "kfpc.lineage"
CHAMPION_AT = "kfpc.champion_at"
ROLLED_BACK = "kfpc.rolled_back"


def flat_properties(lineage: dict[str, Any]) -> dict[str, Any]:
    """The lineage as custom properties: the whole record as JSON plus scalar keys worth filtering on."""
    evaluation = lineage.get("evaluation") or {}
    props: dict[str, Any] = {
        LINEAGE: dumps(lineage),
        "kfpc.run_id": str((lineage.get("pipeline_run") or {}).get("id") or ""),
        "kfpc.run_url": str((lineage.get("pipeline_run") or {}).get("url") or ""),
        "kfpc.baseline_uri": str((lineage.get("baseline") or {}).get("uri") or ""),
        "kfpc.baseline_version": str((lineage.get("baseline") or {}).get("version") or ""),
        "kfpc.schema_hash": str((lineage.get("schema") or {}).get("hash") or ""),
        "kfpc.code_version": str(lineage.get("code_version") or ""),
    }
    if isinstance(evaluation.get("blessed"), bool):
        props["kfpc.blessed"] = evaluation["blessed"]
    for key, value in (evaluation.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            props[f"kfpc.metric.{key}"] = float(value)
    return props


def _share_tls_context(api: Any) -> None:
    """Make the client build its API client (and TLS context) once instead of per request.

    ``ModelRegistryAPIClient.get_client`` builds a new ``ApiClient`` for every request, and with it an
    ``ssl.create_default_context()`` that loads the system CA store: ~0.25 s per request measured here, even
    for ``http://``. The HTTP session is still closed after each request, as the client does.
    """
    from contextlib import asynccontextmanager

    try:
        from mr_openapi import ApiClient, ModelRegistryServiceApi
    except ImportError:  # another client layout: keep its own behaviour
        return
    if not hasattr(api, "config"):
        return
    shared = ApiClient(api.config)
    service = ModelRegistryServiceApi(shared)
    rest = shared.rest_client
    if not all(hasattr(rest, a) for a in ("pool_manager", "retry_client")):
        return

    @asynccontextmanager
    async def get_client():
        try:
            yield service
        finally:
            await shared.close()
            rest.pool_manager = None
            rest.retry_client = None

    object.__setattr__(api, "get_client", get_client)


class KubeflowRegistry(Registry):
    """A Kubeflow Model Registry at ``http(s)://host[:port]``.

    Args:
        address: the registry's REST address.
        author: recorded as author/owner of what kfpc registers.
        user_token: bearer token (default: the client's own lookup; none for an insecure local registry).
        client: an existing ``model_registry.ModelRegistry`` (tests, custom TLS).
    """

    backend = "kubeflow"

    def __init__(self, address: str, *, author: str = "kfpc", user_token: str | None = None, client: Any = None):
        super().__init__(address)
        if client is None:
            parts = urlsplit(address if "://" in address else f"http://{address}")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise RegistryError(f"kubeflow registry address {address!r}: expected http(s)://host[:port]")
            secure = parts.scheme == "https"
            port = parts.port or (443 if secure else 8080)

            def connect():
                from model_registry import ModelRegistry

                with warnings.catch_warnings():  # (no token for an insecure in-cluster registry is normal)
                    warnings.simplefilter("ignore")
                    return ModelRegistry(f"{parts.scheme}://{parts.hostname}", port, author=author,
                                         is_secure=secure, user_token=user_token, log_level=logging.ERROR)

            client = self._call(f"connect to Kubeflow Model Registry {address}", connect)
            _share_tls_context(getattr(client, "_api", None))
        self.client = client
        self.author = author
        #: the client's objects behind the last versions()/_model() reads (a write then needs no re-read)
        self._raw: dict[tuple[str, str], Any] = {}

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RegistryError:
            raise
        except Exception as err:  # the client raises StoreError, ApiException, aiohttp and pydantic errors
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise RegistryError(f"{what}: {type(err).__name__}: {text[:500]}") from err

    # ---- primitives
    def models(self) -> list[str]:
        pager = self._call(f"list registered models at {self.address}", self.client.get_registered_models)
        return [m.name for m in self._call(f"list registered models at {self.address}", list, pager)]

    def _model(self, name: str):
        model = self._call(f"read registered model {name!r} at {self.address}", self.client.get_registered_model, name)
        if model is None:
            raise NotFound(f"model {name!r} is not registered in Kubeflow Model Registry {self.address}")
        self._raw[(name, "")] = model
        return model

    def _aliases(self, model) -> dict[str, str]:
        props = model.custom_properties or {}
        return {k[len(ALIAS_PREFIX):]: str(v) for k, v in props.items() if k.startswith(ALIAS_PREFIX) and v}

    def _artifact(self, name: str, mv):
        what = f"read the model artifact of {name!r} version {mv.name!r} at {self.address}"
        api = getattr(self.client, "_api", None)
        if api is not None and hasattr(api, "get_model_artifacts"):
            # one request instead of the public get_model_artifact's three (the client builds a TLS context
            # per request: ~0.1 s each)
            found = self._call(what, self.client.async_runner, api.get_model_artifacts(mv.id))
            return found[0] if found else None
        return self._call(what, self.client.get_model_artifact, name, mv.name)

    def _version(self, name: str, mv, aliases: dict[str, str]) -> Version:
        artifact = self._artifact(name, mv)
        self._raw[(name, mv.name)] = mv
        props = mv.custom_properties or {}
        try:
            lineage = json.loads(props.get(LINEAGE) or "{}")
        except json.JSONDecodeError:
            lineage = {"unreadable": props.get(LINEAGE)}
        champion_at = props.get(CHAMPION_AT)
        return Version(
            model=name, version=mv.name, uri=(artifact.uri if artifact else "") or "",
            aliases=sorted(a for a, v in aliases.items() if v == mv.name), lineage=lineage,
            champion_at=float(champion_at) if champion_at not in (None, "") else None,
            rolled_back=bool(props.get(ROLLED_BACK, False)), resource_name=mv.id or "",
            created=mv.create_time_since_epoch or "",
        )

    def versions(self, name: str) -> list[Version]:
        model = self._model(name)
        aliases = self._aliases(model)
        what = f"list versions of {name!r} at {self.address}"
        listed = self._call(what, lambda: list(self.client.get_model_versions(name)))
        return [self._version(name, mv, aliases) for mv in listed]

    def _create(self, name: str, version: str, uri: str, lineage: dict[str, Any]) -> Version:
        what = f"register model {name!r} version {version!r} ({uri}) at {self.address}"
        self._call(what, self.client.register_model, name, uri, model_format_name=MODEL_FORMAT,
                   model_format_version=MODEL_FORMAT_VERSION, version=version,
                   version_description=f"registered by kfpc from {uri}", metadata=flat_properties(lineage))
        mv = self._call(what, self.client.get_model_version, name, version)
        self._raw.pop((name, ""), None)  # (the client may just have created the registered model)
        self._raw[(name, version)] = mv
        return Version(model=name, version=version, uri=uri, lineage=lineage, resource_name=mv.id or "")

    def _set_state(self, name: str, version: Version, *, champion_at: float | None = None,
                   rolled_back: bool | None = None) -> None:
        what = f"update model {name!r} version {version.version!r} at {self.address}"
        mv = self._raw.get((name, version.version)) or self._call(what, self.client.get_model_version, name,
                                                                   version.version)
        props = dict(mv.custom_properties or {})
        if champion_at is not None:
            props[CHAMPION_AT] = float(champion_at)
        if rolled_back is not None:
            props[ROLLED_BACK] = bool(rolled_back)
        mv.custom_properties = props
        self._raw[(name, version.version)] = self._call(what, self.client.update, mv)

    def _move_alias(self, name: str, alias: str, version: Version) -> None:
        model = self._raw.get((name, "")) or self._model(name)
        props = dict(model.custom_properties or {})
        props[ALIAS_PREFIX + alias] = version.version
        model.custom_properties = props
        self._raw[(name, "")] = self._call(f"set alias {alias!r} of model {name!r} to {version.version!r} at {self.address}",
                   self.client.update, model)
