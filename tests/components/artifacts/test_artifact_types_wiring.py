"""Typed ports: each kfpc artifact compiles to its own schemaTitle, and a wrong wiring fails at compile time."""

import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl.types.type_utils import InconsistentTypeException

from kfpc.components import artifact_types
from kfpc.components.evaluate.component import evaluate
from kfpc.components.ingest.component import ingest
from kfpc.components.push.component import push_vertex
from kfpc.components.schema.component import infer_schema
from kfpc.components.statistics.component import statistics
from kfpc.components.validate.component import validate


def test_statistics_where_a_schema_is_expected_fails_to_compile(tmp_path):
    with pytest.raises(InconsistentTypeException, match=r"system\.KfpcStatistics.*system\.KfpcSchema"):
        @dsl.pipeline
        def miswired(source_uri: str):
            data = ingest(source_uri=source_uri)
            stats = statistics(data=data.outputs["data"])
            validate(statistics=stats.outputs["statistics"], schema=stats.outputs["statistics"])


def test_the_right_wiring_compiles_with_the_kfpc_type_names(tmp_path):
    @dsl.pipeline
    def wired(source_uri: str):
        data = ingest(source_uri=source_uri)
        stats = statistics(data=data.outputs["data"])
        schema = infer_schema(statistics=stats.outputs["statistics"])
        validate(statistics=stats.outputs["statistics"], schema=schema.outputs["schema"])

    path = tmp_path / "wired.yaml"
    compiler.Compiler().compile(wired, str(path))
    spec = yaml.safe_load(path.read_text())
    titles = {name: port["artifactType"]["schemaTitle"]
              for name, port in spec["components"]["comp-validate"]["inputDefinitions"]["artifacts"].items()}
    assert titles == {"statistics": "system.KfpcStatistics", "schema": "system.KfpcSchema", "previous_statistics": "system.KfpcStatistics",
                      "serving_statistics": "system.KfpcStatistics"}
    outputs = spec["components"]["comp-validate"]["outputDefinitions"]["artifacts"]
    assert outputs["anomalies"]["artifactType"]["schemaTitle"] == "system.KfpcAnomalies"
    # the task imports the class it is typed with (kfp adds the import to the generated code)
    command = spec["deploymentSpec"]["executors"]["exec-validate"]["container"]["command"]
    assert any("from kfpc.components.artifact_types import Anomalies" in part for part in command)


def test_the_blessing_and_vertex_ports_are_typed():
    blessing = evaluate.component_spec.outputs["blessing"].type
    assert blessing == f"{artifact_types.Blessing.schema_title}@{artifact_types.Blessing.schema_version}"
    outputs = push_vertex.component_spec.outputs
    assert outputs["vertex_model"].type.startswith("google.VertexModel@")
    assert outputs["vertex_endpoint"].type.startswith("google.VertexEndpoint@")
    assert push_vertex.component_spec.inputs["blessing"].type.startswith("system.KfpcBlessing@")


def test_our_vertex_classes_carry_gcpc_titles():
    from google_cloud_pipeline_components.types import artifact_types as gcpc
    for ours, theirs in ((artifact_types.VertexModel, gcpc.VertexModel),
                         (artifact_types.VertexEndpoint, gcpc.VertexEndpoint)):
        assert (ours.schema_title, ours.schema_version) == (theirs.schema_title, theirs.schema_version)
