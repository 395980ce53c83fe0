"""Image references for every component, in one place.

One image per dependency family. The tag is the package version, never ``latest``, so a compiled
pipeline always names the image that was built from the same code. ``KFPC_IMAGE_REGISTRY`` (or
``kfpc compile --image-registry``) points every reference at a private or air-gapped registry.
"""

from __future__ import annotations

import os

from kfpc.components import __version__

DEFAULT_REGISTRY = "ghcr.io/kfpc"

#: family name -> image repository name
FAMILIES = {
    "data": "kfpc-data",  # ingest, statistics, schema, validate: pyarrow + tensorflow-metadata
    "tf": "kfpc-tf",  # train, evaluate: TensorFlow CPU
    "tf-gpu": "kfpc-tf-gpu",  # train on GPU nodes: TensorFlow with CUDA
    "deploy": "kfpc-deploy",  # push, submit, schedule: kserve SDK, kubernetes, aiplatform
    "serving": "kfpc-serving",  # the KServe model server
}


def registry() -> str:
    """The registry image references point at (``KFPC_IMAGE_REGISTRY`` or the default)."""
    return os.environ.get("KFPC_IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")


def image(family: str, reg: str | None = None) -> str:
    """The full image reference of a family, tagged with the package version.

    Args:
        family: one of ``FAMILIES``.
        reg: registry to use instead of ``registry()``.
    Returns:
        e.g. ``ghcr.io/kfpc/kfpc-data:0.1.0``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown image family {family!r}; known: {sorted(FAMILIES)}")
    return f"{reg or registry()}/{FAMILIES[family]}:{__version__}"


DATA = image("data")
TF = image("tf")
TF_GPU = image("tf-gpu")
DEPLOY = image("deploy")
SERVING = image("serving")
