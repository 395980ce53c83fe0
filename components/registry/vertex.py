"""Vertex AI Model Registry backend, through ``google.cloud.aiplatform_v1``'s ``ModelServiceClient``.

A kfpc model is one Vertex ``Model``; each registered version is an upload with ``parent_model`` (Vertex
numbers versions 1, 2, ...; kfpc's version name, e.g. ``v3``, is the label ``kfpc-version``). Aliases are
Vertex version aliases (``champion``, ``challenger``; moved with ``MergeVersionAliases``: removed from the
version holding them, then added). The lineage record is the version's ``metadata``; promotion history is
in its labels (``kfpc-champion-at``: epoch milliseconds, ``kfpc-rolled-back``).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from .core import NotFound, Registry, RegistryError, Version

log = logging.getLogger(__name__)

VERSION_LABEL = "kfpc-version"
CHAMPION_AT_LABEL = "kfpc-champion-at"
ROLLED_BACK_LABEL = "kfpc-rolled-back"
_ADDRESS = re.compile(r"^projects/([a-z0-9-]+)/locations/([a-z]+-[a-z]+\d+)$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def label_value(text: str) -> str:
    """``text`` as a Vertex label value (lowercase letters, digits, ``-`` and ``_``; at most 63)."""
    return re.sub(r"[^a-z0-9_-]", "-", str(text).lower())[:63]


class VertexRegistry(Registry):
    """The Vertex AI Model Registry of ``projects/<project>/locations/<location>``.

    Args:
        address: ``projects/<project>/locations/<location>``.
        credentials: Google credentials (None = application default).
        client: a ``ModelServiceClient`` to use (tests: one on a local channel).
        image: serving image of new uploads (our server; see :func:`kfpc.components.push.vertex.upload_request`).
    """

    backend = "vertex"

    def __init__(self, address: str, *, credentials: Any = None, client: Any = None, image: str = ""):
        super().__init__(address)
        match = _ADDRESS.match(address or "")
        if not match:
            raise RegistryError(f"vertex registry address {address!r}: expected projects/<project>/locations/<region>")
        self.project, self.location = match.groups()
        if client is None:
            from google.cloud import aiplatform_v1 as v1

            client = v1.ModelServiceClient(credentials=credentials,
                                           client_options={"api_endpoint": f"{self.location}-aiplatform.googleapis.com"})
        self.client = client
        self.image = image

    def _call(self, what: str, fn, *args, **kwargs):
        from google.api_core import exceptions as gexc

        try:
            return fn(*args, **kwargs)
        except RegistryError:
            raise
        except gexc.NotFound as err:
            raise NotFound(f"{what}: {err.message}") from err
        except Exception as err:  # GoogleAPICallError, RetryError, transport errors
            text = getattr(err, "message", None) or str(err)
            raise RegistryError(f"{what}: {type(err).__name__}: {str(text).strip()[:500]}") from err

    # ---- lookups
    def _model_resource(self, name: str) -> str:
        if name.startswith("projects/"):
            return name
        what = f"find model {name!r} in {self.address}"
        found = self._call(what, lambda: list(self.client.list_models(
            request={"parent": self.address, "filter": f'display_name="{name}"'})))
        if not found:
            raise NotFound(f"model {name!r} is not registered in Vertex AI Model Registry {self.address}")
        return found[0].name

    def models(self) -> list[str]:
        listed = self._call(f"list models in {self.address}", lambda: list(self.client.list_models(
            request={"parent": self.address})))
        return sorted({m.display_name for m in listed})

    def _version(self, name: str, model) -> Version:
        from google.protobuf import json_format

        labels = dict(model.labels)
        lineage: dict[str, Any] = {}
        raw = type(model).pb(model)
        if raw.HasField("metadata"):
            value = json_format.MessageToDict(raw.metadata)
            lineage = value if isinstance(value, dict) else {"value": value}
        at = labels.get(CHAMPION_AT_LABEL)
        return Version(
            model=name, version=labels.get(VERSION_LABEL) or model.version_id, uri=model.artifact_uri,
            aliases=sorted(a for a in model.version_aliases if a != "default"), lineage=lineage,
            champion_at=int(at) / 1000 if at and at.isdigit() else None,
            rolled_back=labels.get(ROLLED_BACK_LABEL) == "true",
            resource_name=f"{model.name.split('@')[0]}@{model.version_id}",
            created=model.version_create_time.isoformat() if model.version_create_time else "",
        )

    def versions(self, name: str) -> list[Version]:
        resource = self._model_resource(name)
        listed = self._call(f"list versions of {name!r} in {self.address}", lambda: list(
            self.client.list_model_versions(request={"name": resource})))
        listed.sort(key=lambda m: int(m.version_id) if m.version_id.isdigit() else 0)
        return [self._version(name, m) for m in listed]

    # ---- writes
    def _create(self, name: str, version: str, uri: str, lineage: dict[str, Any]) -> Version:
        from google.cloud import aiplatform_v1 as v1
        from google.protobuf import json_format, struct_pb2

        from ..push import vertex as push_vertex

        if not _LABEL_VALUE.match(version):
            raise RegistryError(f"model {name!r}: version name {version!r} must be a Vertex label value "
                                f"(lowercase letters, digits, '-', '_')")
        try:
            parent = self._model_resource(name)
        except NotFound:
            parent = ""
        options = {"image": self.image} if self.image else {}
        try:
            opts = push_vertex.VertexOptions(project=self.project, location=self.location, display_name=name,
                                             parent_model=parent, **options)
            request = push_vertex.upload_request(opts, uri)
        except ValueError as err:
            raise RegistryError(f"model {name!r} version {version!r}: {err}") from None
        run_id = str((lineage.get("pipeline_run") or {}).get("id") or "")
        request.model.labels = {"managed-by": "kfpc", VERSION_LABEL: version,
                                **({"kfpc-run-id": label_value(run_id)} if run_id else {})}
        request.model.version_description = f"kfpc {version} from {uri}"[:128]
        model_pb = v1.Model.pb(request.model)
        model_pb.metadata.CopyFrom(json_format.ParseDict(json.loads(json.dumps(lineage, default=str)),
                                                         struct_pb2.Value()))
        what = f"upload model {name!r} version {version!r} ({uri}) to {self.address}"
        operation = self._call(what, self.client.upload_model, request=request)
        self._call(what, operation.result, timeout=1800)
        return self.get(name, version)

    def _set_state(self, name: str, version: Version, *, champion_at: float | None = None,
                   rolled_back: bool | None = None) -> None:
        from google.cloud import aiplatform_v1 as v1
        from google.protobuf import field_mask_pb2

        what = f"update labels of model {name!r} version {version.version!r} ({version.resource_name})"
        current = self._call(what, self.client.get_model, name=version.resource_name)
        labels = dict(current.labels)
        if champion_at is not None:
            labels[CHAMPION_AT_LABEL] = str(int(champion_at * 1000))
        if rolled_back is not None:
            labels[ROLLED_BACK_LABEL] = "true" if rolled_back else "false"
        self._call(what, self.client.update_model, request=v1.UpdateModelRequest(
            model=v1.Model(name=version.resource_name, labels=labels),
            update_mask=field_mask_pb2.FieldMask(paths=["labels"])))

    def _move_alias(self, name: str, alias: str, version: Version) -> None:
        what = f"move alias {alias!r} of model {name!r} to version {version.version!r}"
        for other in self.versions(name):
            if alias in other.aliases and other.resource_name != version.resource_name:
                self._call(what, self.client.merge_version_aliases, name=other.resource_name,
                           version_aliases=[f"-{alias}"])
        self._call(what, self.client.merge_version_aliases, name=version.resource_name, version_aliases=[alias])

    def vertex_model(self, version: Version) -> dict[str, str]:
        """What a ``google.VertexModel`` artifact holds for ``version`` (uri and ``resourceName``)."""
        return {"uri": f"https://{self.location}-aiplatform.googleapis.com/v1/{version.resource_name}",
                "resourceName": version.resource_name}
