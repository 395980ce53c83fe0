"""KFP v2 components: infer_schema and import_schema. Call :mod:`kfpc.components.schema.core`."""

from kfp import dsl
from kfp.dsl import Input, Output

from kfpc.components import images
from kfpc.components.artifact_types import Schema, Statistics


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def infer_schema(
    statistics: Input[Statistics],
    schema: Output[Schema],
    split: str = "train",
    max_string_domain_size: int = 100,
    infer_feature_shape: bool = True,
    infer_int_domains: bool = False,
    drift_threshold: float = 0.0,
    skew_threshold: float = 0.0,
    min_domain_mass: float = 0.99,
):
    """Infer a schema (``schema.pbtxt``) from one split's statistics with TFDV's rules.

    Args:
        statistics: a statistics artifact (``Split-<split>/FeatureStats.pb``).
        schema: the schema artifact: ``schema.pbtxt``; metadata ``features``.
        split: the split to infer from.
        max_string_domain_size: largest number of distinct strings that becomes a string domain.
        infer_feature_shape: always-present features get ``shape [1]`` (else ``value_count``).
        infer_int_domains: integer features get ``int_domain {min max}`` (the observed range).
        drift_threshold: if > 0, every feature gets a drift comparator (L-infinity for categorical,
            Jensen-Shannon divergence for numeric features) with this threshold.
        skew_threshold: if > 0, the same for the skew comparator (training vs serving).
        min_domain_mass: share of values a string domain asks to be in it; values outside it are a warning
            until their share is significantly above ``1 - min_domain_mass``; 1.0: every one is an error.
    """
    from kfpc.components import artifacts
    from kfpc.components.schema import core

    def comparators(threshold):
        return {"infinity_norm": threshold, "jensen_shannon_divergence": threshold} if threshold > 0 else None

    inferred = core.infer_schema(
        artifacts.read_statistics(statistics.path, split),
        infer_feature_shape=infer_feature_shape,
        max_string_domain_size=max_string_domain_size,
        infer_int_domains=infer_int_domains,
        drift_comparators=comparators(drift_threshold),
        skew_comparators=comparators(skew_threshold),
        min_domain_mass=min_domain_mass,
    )
    artifacts.write_schema(inferred, schema.path)
    schema.metadata.update({"features": core.schema_features(inferred)})


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def import_schema(schema_uri: str, schema: Output[Schema]):
    """Bring a curated, reviewed ``schema.pbtxt`` into the pipeline (TFX's ImportSchemaGen).

    Args:
        schema_uri: path, ``file://`` or ``gs://`` URI of the schema file (or a folder holding ``schema.pbtxt``).
        schema: the schema artifact: ``schema.pbtxt``; metadata ``features``, ``source_uri``.
    """
    from kfpc.components.schema import core

    imported = core.import_schema(schema_uri, schema.path)
    schema.metadata.update({"features": core.schema_features(imported), "source_uri": schema_uri})


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def resolve_schema(
    statistics: Input[Statistics],
    schema: Output[Schema],
    schema_uri: str = "",
    split: str = "train",
    max_string_domain_size: int = 100,
):
    """The schema a run validates against: the curated one at ``schema_uri``, or one inferred when empty.

    One task instead of ``dsl.If``/``dsl.Else`` around ``import_schema`` and ``infer_schema`` joined by
    ``dsl.OneOf``: kfp.local cannot yet resolve an artifact ``OneOf``, and a pipeline must run the same here
    as on a cluster. Use ``import_schema`` / ``infer_schema`` directly when the choice is made at build time.

    Args:
        statistics: a statistics artifact; its ``split`` is inferred from when ``schema_uri`` is empty.
        schema: the schema artifact: ``schema.pbtxt``; metadata ``features``, ``source_uri``.
        schema_uri: path, ``file://``, ``gs://`` or ``bundled:`` URI of a curated schema; empty: infer.
        split: the split to infer from.
        max_string_domain_size: largest number of distinct strings that becomes a string domain.
    """
    from kfpc.components import artifacts
    from kfpc.components.schema import core

    if schema_uri:
        resolved = core.import_schema(schema_uri, schema.path)
    else:
        resolved = core.infer_schema(artifacts.read_statistics(statistics.path, split), max_string_domain_size=max_string_domain_size)
        artifacts.write_schema(resolved, schema.path)
    schema.metadata.update(
        {"features": core.schema_features(resolved), "source_uri": schema_uri or "inferred"}
    )
