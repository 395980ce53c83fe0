"""Strict checks of rendered Kubernetes manifests through generated API models: Kubeflow's SDK
(``kubeflow_trainer_api``, ``kubeflow_katib_api``: pydantic v2) and the ``kubernetes`` client.

Parsing checks types, but the generated models silently drop fields they do not declare, so a misspelt field
would pass; the manifest is therefore also compared with the model's own serialization and every field that
vanished or changed on the way is reported by its path. Fields the serialization adds (defaults) are fine.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ManifestError(AssertionError):
    """A manifest the API model refuses (wrong type, missing required field) or does not fully keep."""


def differences(original: Any, serialized: Any, path: str = "") -> list[str]:
    """Every place where ``original`` is not kept by ``serialized``.

    Args:
        original: the manifest (or part) as written.
        serialized: the model's serialization of it.
        path: the path of ``original`` inside the manifest, for messages.
    Returns:
        ``"<path>: unknown field"`` / ``"<path>: <original> became <serialized>"`` lines; empty when all kept.
    """
    if isinstance(original, dict):
        if not isinstance(serialized, dict):
            return [f"{path or '.'}: {original!r} became {serialized!r}"]
        out = []
        for key, value in original.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in serialized:
                if value is not None:  # null is what an absent field reads as: nothing was lost
                    out.append(f"{where}: unknown field")
            else:
                out.extend(differences(value, serialized[key], where))
        return out
    if isinstance(original, list):
        if not isinstance(serialized, list) or len(serialized) != len(original):
            return [f"{path}: {original!r} became {serialized!r}"]
        return [d for i, (a, b) in enumerate(zip(original, serialized, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    numbers = (int, float)
    same_kind = type(original) is type(serialized) or (
        isinstance(original, numbers) and isinstance(serialized, numbers)
        and not isinstance(original, bool) and not isinstance(serialized, bool))  # a Quantity 2 is kept as 2.0
    if not same_kind or original != serialized:
        return [f"{path}: {original!r} became {serialized!r}"]
    return []


def _raise_if_different(manifest: dict, serialized: Any, name: str) -> None:
    found = differences(manifest, serialized)
    if found:
        raise ManifestError(f"{name} does not keep the manifest as written:\n  " + "\n  ".join(found))


def check(manifest: dict, model: type) -> Any:
    """Parse ``manifest`` with a generated pydantic model of Kubeflow's SDK and require it to keep every field.

    Args:
        manifest: the object as it would be sent to the API server.
        model: e.g. ``kubeflow_trainer_api.models.TrainerV1alpha1TrainJob``.
    Returns:
        the parsed model instance.
    Raises:
        ManifestError: a wrong type or missing required field (pydantic's message), or fields the model
            dropped or changed (by path).
    """
    try:
        parsed = model.from_dict(manifest)
    except (ValidationError, ValueError, TypeError) as error:
        raise ManifestError(f"{model.__name__}: {error}") from error
    _raise_if_different(manifest, parsed.to_dict(), model.__name__)
    return parsed


def check_kubernetes(manifest: dict, kind: str) -> Any:
    """The same check with the ``kubernetes`` client's models, e.g. ``kind="V1Role"``.

    The client converts primitives (``int("8")``) instead of refusing them; the comparison then reports the
    changed value, so a wrong type still fails.
    """
    from kubernetes import client

    api = client.ApiClient()
    try:
        parsed = api._ApiClient__deserialize(manifest, kind)  # what the client does with a response body
    except (ValueError, TypeError, AttributeError) as error:
        raise ManifestError(f"{kind}: {error}") from error
    _raise_if_different(manifest, api.sanitize_for_serialization(parsed), kind)
    return parsed
