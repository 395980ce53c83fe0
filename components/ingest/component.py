"""KFP v2 component: ingest. Parses inputs, calls :mod:`kfpc.components.ingest.core`, writes metadata."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from kfpc.components import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def ingest(
    source_uri: str,
    data: Output[Dataset],
    key_column: str = "",
    eval_fraction: float = 0.2,
    file_format: str = "auto",
    delimiter: str = ",",
    drop_columns: list[str] = [],  # noqa: B006 (KFP reads the default from the signature)
    numeric_columns: list[str] = [],  # noqa: B006
    label: str = "",
):
    """Read a CSV or Parquet table and write it as Parquet splits ``train`` and ``eval``.

    Args:
        source_uri: path of the CSV or Parquet file (local, ``file://``, or ``gs://`` via the /gcs mount).
        data: the Dataset artifact: ``Split-train/data.parquet`` and ``Split-eval/data.parquet``.
        key_column: column whose hash decides the split; empty hashes the whole row.
        eval_fraction: share of rows in the eval split.
        file_format: ``auto`` (by extension), ``csv`` or ``parquet``.
        delimiter: CSV field delimiter.
        drop_columns: columns left out of the Dataset (e.g. preflight's output: excluded and all-null columns).
        numeric_columns: text columns read as numbers; values that are not numbers become nulls (counted in
            the metadata key ``coerced_to_null``).
        label: the label column: left out of the row hash that splits rows (without ``key_column``), so rows
            with equal features land in the same split whatever their labels.
    """
    from kfpc.components.ingest import core

    result = core.ingest(
        source_uri,
        data.path,
        key_column=key_column or None,
        eval_fraction=eval_fraction,
        file_format=file_format,
        delimiter=delimiter,
        drop_columns=list(drop_columns),
        numeric_columns=list(numeric_columns),
        label=label or None,
    )
    data.metadata.update(result.metadata())
