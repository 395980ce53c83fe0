"""An in-process fake of Vertex AI's ModelService (and EndpointService.DeployModel) over real gRPC on 127.0.0.1.

The real ``aiplatform_v1`` clients talk to it through an insecure channel; requests and responses are the
library's own proto-plus messages (serialized on the wire). Every call is recorded in ``calls``. Semantics
kept: version ids 1, 2, ... per model, the first version gets the ``default`` alias, an alias names one
version (adding an alias another version holds is refused, as a strict server may), ``@<id>`` addressing.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from concurrent import futures
from typing import Any

import grpc
from google.cloud import aiplatform_v1 as v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2


class FakeVertex:
    def __init__(self) -> None:
        self.models: dict[str, list[v1.Model]] = {}  # resource -> versions
        self.calls: list[dict[str, Any]] = []
        self.deployed: list[v1.DeployModelRequest] = []
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self.server: grpc.Server | None = None
        self.port = 0

    # ---- lifecycle and clients
    def __enter__(self) -> FakeVertex:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "UploadModel": (v1.UploadModelRequest, self.upload_model),
            "GetModel": (v1.GetModelRequest, self.get_model),
            "ListModels": (v1.ListModelsRequest, self.list_models),
            "ListModelVersions": (v1.ListModelVersionsRequest, self.list_model_versions),
            "UpdateModel": (v1.UpdateModelRequest, self.update_model),
            "MergeVersionAliases": (v1.MergeVersionAliasesRequest, self.merge_version_aliases),
        }
        self.server.add_generic_rpc_handlers([self._service("google.cloud.aiplatform.v1.ModelService", handlers),
                                              self._service("google.cloud.aiplatform.v1.EndpointService",
                                                            {"DeployModel": (v1.DeployModelRequest, self.deploy_model)})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(None)

    def _service(self, service: str, handlers: dict):
        def wrap(name, request_type, fn):
            def behaviour(request, context):
                with self._lock:
                    self.calls.append({"method": name, "request": type(request).to_dict(request)})
                    try:
                        return fn(request)
                    except _Abort as err:
                        self.calls[-1]["error"] = err.args
                        context.abort(err.args[0], err.args[1])

            return grpc.unary_unary_rpc_method_handler(
                behaviour, request_deserializer=request_type.deserialize,
                response_serializer=lambda m: m.SerializeToString() if hasattr(m, "SerializeToString")
                else type(m).serialize(m))

        return grpc.method_handlers_generic_handler(
            service, {name: wrap(name, req, fn) for name, (req, fn) in handlers.items()})

    def model_client(self) -> v1.ModelServiceClient:
        from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport

        return v1.ModelServiceClient(transport=ModelServiceGrpcTransport(
            channel=grpc.insecure_channel(f"127.0.0.1:{self.port}")))

    def endpoint_client(self) -> v1.EndpointServiceClient:
        from google.cloud.aiplatform_v1.services.endpoint_service.transports import EndpointServiceGrpcTransport

        return v1.EndpointServiceClient(transport=EndpointServiceGrpcTransport(
            channel=grpc.insecure_channel(f"127.0.0.1:{self.port}")))

    def methods(self) -> list[str]:
        return [c["method"] for c in self.calls]

    # ---- semantics
    def _split(self, name: str) -> tuple[list[v1.Model], v1.Model]:
        resource, _, vid = name.partition("@")
        versions = self.models.get(resource)
        if versions is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Model {resource} not found")
        if not vid:
            vid = next(m.version_id for m in versions if "default" in m.version_aliases)
        match = [m for m in versions if m.version_id == vid or vid in m.version_aliases]
        if not match:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Model version {name} not found")
        return versions, match[0]

    def upload_model(self, request: v1.UploadModelRequest):
        model = copy.deepcopy(request.model)
        if not model.artifact_uri or not model.container_spec.image_uri or not model.display_name:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "artifact_uri, container_spec.image_uri and "
                                                           "display_name are required")
        if not re.fullmatch(r"projects/[^/]+/locations/[^/]+", request.parent):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad parent {request.parent}")
        if request.parent_model:
            if request.parent_model not in self.models:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"parent model {request.parent_model} not found")
            resource = request.parent_model
        else:
            resource = f"{request.parent}/models/{next(self._ids)}"
            self.models[resource] = []
        versions = self.models[resource]
        model.name = resource
        model.version_id = str(len(versions) + 1)
        if not versions:
            model.version_aliases = ["default"] + list(model.version_aliases)
        versions.append(model)
        response = v1.UploadModelResponse(model=resource, model_version_id=model.version_id)
        packed = any_pb2.Any()
        packed.Pack(v1.UploadModelResponse.pb(response))
        return operations_pb2.Operation(name=f"{resource}/operations/{next(self._ids)}", done=True, response=packed)

    def get_model(self, request: v1.GetModelRequest):
        return self._split(request.name)[1]

    def list_models(self, request: v1.ListModelsRequest):
        wanted = re.fullmatch(r'display_name="(.*)"', request.filter or "")
        found = []
        for resource, versions in self.models.items():
            default = next(m for m in versions if "default" in m.version_aliases)
            if resource.startswith(request.parent + "/") and (not wanted or default.display_name == wanted.group(1)):
                found.append(default)
        return v1.ListModelsResponse(models=found)

    def list_model_versions(self, request: v1.ListModelVersionsRequest):
        versions, _ = self._split(request.name)
        return v1.ListModelVersionsResponse(models=versions)

    def update_model(self, request: v1.UpdateModelRequest):
        versions, model = self._split(request.model.name)
        paths = list(request.update_mask.paths)
        if paths != ["labels"]:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"this fake updates labels only, got {paths}")
        model.labels = dict(request.model.labels)
        return model

    def merge_version_aliases(self, request: v1.MergeVersionAliasesRequest):
        versions, model = self._split(request.name)
        aliases = list(model.version_aliases)
        for alias in request.version_aliases:
            if alias.startswith("-"):
                if alias[1:] == "default":
                    raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "the default alias cannot be removed")
                aliases = [a for a in aliases if a != alias[1:]]
            else:
                holder = [m for m in versions if alias in m.version_aliases and m is not model]
                if holder:
                    raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                                 f"alias {alias} is used by version {holder[0].version_id}")
                if alias not in aliases:
                    aliases.append(alias)
        model.version_aliases = aliases
        return model

    def deploy_model(self, request: v1.DeployModelRequest):
        self._split(request.deployed_model.model)
        self.deployed.append(request)
        response = v1.DeployModelResponse(deployed_model=v1.DeployedModel(id=str(next(self._ids)),
                                                                          model=request.deployed_model.model))
        packed = any_pb2.Any()
        packed.Pack(v1.DeployModelResponse.pb(response))
        return operations_pb2.Operation(name=f"{request.endpoint}/operations/{next(self._ids)}", done=True,
                                        response=packed)


class _Abort(Exception):
    pass
