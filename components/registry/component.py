"""KFP v2 component: register_model. Gathers the lineage from its inputs, calls the registry core, writes outputs."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from kfpc.components import images
from kfpc.components.artifact_types import Blessing, Schema, Statistics, VertexModel


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def register_model(
    model: Input[Model],
    registered: Output[Artifact],
    vertex_model: Output[VertexModel],
    name: str,
    registry_uri: str,
    backend: str = "kubeflow",
    model_uri: str = "",
    version: str = "",
    champion: bool = False,
    aliases: list = [],  # noqa: B006 (KFP reads the default from the signature)
    blessing: Input[Blessing] = None,
    metrics: Input[Metrics] = None,
    data: Input[Dataset] = None,
    statistics: Input[Statistics] = None,
    schema: Input[Schema] = None,
    baseline_model_uri: str = "",
    push_result: Input[Artifact] = None,
    run_id: str = "",
    run_name: str = "",
    run_url: str = "",
) -> NamedTuple("RegisterOutputs", version=str, uri=str):
    """Register a pushed model version in the Kubeflow or Vertex AI Model Registry, with its lineage.

    Args:
        model: the Model artifact (its card gives hyperparameters, training metrics, schema hash).
        registered: output: ``registry.json`` (the registry record) and ``model_card.json`` (the card with its
            ``registry`` section); metadata: the same record.
        vertex_model: output ``google.VertexModel`` (Vertex backend; empty for Kubeflow).
        name: registered model name.
        registry_uri: ``http(s)://host:port`` (kubeflow) or ``projects/<p>/locations/<region>`` (vertex).
        backend: ``kubeflow`` or ``vertex``.
        model_uri: the pushed copy to register (push's ``model_uri``); empty = the Model artifact's URI.
        version: version name; empty = the pushed folder's ``v<N>``.
        champion: make the version champion (records promotion history; push has deployed it already).
        aliases: other aliases for the version (e.g. ``["challenger"]``).
        blessing: evaluation's blessing (verdict, thresholds).
        metrics: evaluation's metrics.
        data: the Dataset trained and evaluated on.
        statistics: its statistics.
        schema: the schema it was validated against (hashed).
        baseline_model_uri: the served model the candidate was compared with.
        push_result: push's ``manifest`` artifact: at ``traffic_percent`` 100 the version becomes champion, in a
            canary it becomes ``challenger`` (overrides ``champion``).
        run_id: the pipeline run id (pass ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
        run_name: the pipeline run name (``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``).
        run_url: the run's UI URL; ``{run_id}`` and ``{run_name}`` are filled in.
    Returns:
        version, uri.
    """
    from collections import namedtuple

    from kfpc.components import images as image_refs
    from kfpc.components.registry import core

    def described(artifact):
        return None if artifact is None else {"uri": artifact.uri, **dict(artifact.metadata)}

    lineage_inputs = {
        "run_id": run_id, "run_name": run_name,
        "run_url": run_url.replace("{run_id}", run_id).replace("{run_name}", run_name),
        "data": [d for d in [described(data)] if d],
        "statistics": [s for s in [described(statistics)] if s],
        "schema_path": schema.path if schema is not None else None,
        "schema_uri": schema.uri if schema is not None else "",
        "metrics": dict(metrics.metadata) if metrics is not None else {},
        "blessing": dict(blessing.metadata) if blessing is not None else {},
        "baseline_uri": baseline_model_uri,
        "images": {family: image_refs.image(family) for family in image_refs.FAMILIES},
    }
    aliases = list(aliases)
    if push_result is not None:
        champion = int(push_result.metadata.get("traffic_percent", 100)) == 100
        if not champion and core.CHALLENGER not in aliases:
            aliases.append(core.CHALLENGER)
    section = core.register_pushed_model(
        model.path, backend=backend, address=registry_uri, name=name, uri=model_uri or model.uri,
        version=version, aliases=aliases, champion=champion, lineage_inputs=lineage_inputs,
        output_dir=registered.path,
    )
    registered.metadata.update({k: v for k, v in section.items() if k != "vertex_model"})
    if "vertex_model" in section:
        vertex_model.uri = section["vertex_model"]["uri"]
        vertex_model.metadata["resourceName"] = section["vertex_model"]["resourceName"]
    outputs = namedtuple("RegisterOutputs", ["version", "uri"])
    return outputs(section["version"], section["uri"])
