"""Typed KFP artifacts: each port says what it carries, so a wrong wiring fails when the pipeline compiles.

A plain ``dsl.Artifact`` is ``system.Artifact``, which KFP connects to anything; these classes compile to
their own ``artifactType.schemaTitle`` and KFP refuses to connect an output to an input of another title
(``InconsistentTypeException``, e.g. Statistics where a Schema is expected). The file layouts are in
:mod:`kfpc.components.artifacts`.

Titles are ``system.Kfpc<Name>``: kfp 2.17 accepts only the ``system`` and ``google`` namespaces in a
``schema_title`` (``type_utils.validate_schema_title``: ``kfpc.Statistics`` is a ``TypeError`` when the
component is defined, and again when anyone loads its compiled YAML), and the ``Kfpc`` prefix keeps ours
apart from any type KFP may add to ``system`` later.

``VertexModel`` / ``VertexEndpoint`` carry Google Cloud Pipeline Components' titles (``google.VertexModel``,
``google.VertexEndpoint``) and metadata (``resourceName``; ``uri`` the resource's REST URL), so GCPC ops
accept them. They are declared here rather than imported from GCPC because a component's generated code
imports the classes of its signature inside the task, and GCPC is a compile-time tool kept out of the
deploy image (components/images/requirements-deploy.in).
"""

from __future__ import annotations

from kfp import dsl

__all__ = ["Anomalies", "Blessing", "Schema", "Statistics", "StatisticsAccumulator", "VertexEndpoint", "VertexModel",
           "vertex_resource_uri"]


class Statistics(dsl.Artifact):
    """Per-split ``DatasetFeatureStatisticsList``: ``Split-<split>/FeatureStats.pb`` (TFX's ExampleStatistics)."""

    schema_title = "system.KfpcStatistics"
    schema_version = "0.0.1"


class StatisticsAccumulator(dsl.Artifact):
    """One shard's mergeable statistics (the versioned wire format of ``statistics/wire.py``), for
    ``merge_statistics``; not readable as statistics before the merge."""

    schema_title = "system.KfpcStatisticsAccumulator"
    schema_version = "0.0.1"


class Schema(dsl.Artifact):
    """A ``tensorflow_metadata`` Schema: ``schema.pbtxt``."""

    schema_title = "system.KfpcSchema"
    schema_version = "0.0.1"


class Anomalies(dsl.Artifact):
    """A ``tensorflow_metadata`` Anomalies report: ``anomalies.pbtxt``; metadata ``anomaly_count`` and more."""

    schema_title = "system.KfpcAnomalies"
    schema_version = "0.0.1"


class Blessing(dsl.Artifact):
    """Evaluation's verdict: ``blessing.json``, ``evaluation.json``, a ``BLESSED``/``NOT_BLESSED`` marker;
    metadata ``blessed`` (what push reads)."""

    schema_title = "system.KfpcBlessing"
    schema_version = "0.0.1"


class VertexModel(dsl.Artifact):
    """A Vertex AI Model resource (GCPC's ``google.VertexModel``): metadata ``resourceName``."""

    schema_title = "google.VertexModel"
    schema_version = "0.0.1"


class VertexEndpoint(dsl.Artifact):
    """A Vertex AI Endpoint resource (GCPC's ``google.VertexEndpoint``): metadata ``resourceName``."""

    schema_title = "google.VertexEndpoint"
    schema_version = "0.0.1"


def vertex_resource_uri(api_endpoint: str, resource_name: str) -> str:
    """The REST URL GCPC puts in a Vertex artifact's ``uri``: ``https://<api endpoint>/v1/<resource name>``."""
    return f"https://{api_endpoint}/v1/{resource_name}"
