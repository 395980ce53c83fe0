"""The defaults both pipelines share: :mod:`kfpc.components.defaults`, the one source the components, the
cores, the CLI and the model server read too (re-exported here so pipeline code reads ``D.EPOCHS``)."""

from kfpc.components.defaults import *  # noqa: F401,F403 (the re-export is the point)
