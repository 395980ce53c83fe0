"""KFP artifact classes of the registry component (kfp imported here, never in core)."""

from kfp import dsl


class VertexModel(dsl.Artifact):
    """A Vertex AI Model resource (``google.VertexModel``, as Google Cloud Pipeline Components consume it):
    ``uri`` is the model version's REST URL, ``metadata["resourceName"]`` its resource name."""

    schema_title = "google.VertexModel"
    schema_version = "0.0.1"
