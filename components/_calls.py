"""Calling a core from its thin component: the component's parameters that the core takes by the same name.

A KFP component must spell out its parameters (KFP reads them from the signature, and a lightweight
component's source is what runs), and so does its core; the call between them need not list them a third
time. :func:`same_named` picks them from the component's ``locals()``, so a parameter added to both reaches the
core without another line, and one added to the component only is visibly not passed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def same_named(core: Callable, values: Mapping[str, Any], **explicit: Any) -> dict[str, Any]:
    """Keyword arguments for ``core``: every value of ``values`` whose name ``core`` takes as a keyword, then
    ``explicit`` (converted values, outputs' paths), which win.

    Raises:
        TypeError: an ``explicit`` name ``core`` does not take (a typo would otherwise be dropped silently).
    """
    accepted = {name for name, p in inspect.signature(core).parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(explicit) - accepted)
    if unknown:
        raise TypeError(f"{getattr(core, '__qualname__', core)} takes no argument {unknown}")
    return {**{name: value for name, value in values.items() if name in accepted}, **explicit}
