"""kfpc components: reusable, typed KFP v2 components for tabular ML.

Each component lives in its own folder with a ``core.py`` (plain Python on local paths, no kfp import),
a ``component.py`` (the thin KFP v2 component) and a ``README.md``.
"""

__version__ = "0.1.0"
