"""KFP v2 component: train. Translates artifacts and parameters, calls :mod:`kfpc.components.train.core`."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from kfpc.components import images
from kfpc.components.artifact_types import Schema, Statistics


@dsl.component(base_image=images.TF, install_kfp_package=False)
def train(
    data: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    tensorboard_logs: Output[Artifact],
    label: str,
    statistics: Input[Statistics] = None,
    schema: Input[Schema] = None,
    task: str = "auto",
    hidden_units: list[int] = [64, 32],  # noqa: B006 (KFP reads the default from the signature)
    dropout: float = 0.1,
    learning_rate: float = 0.01,
    batch_size: int = 0,
    epochs: int = 100,
    patience: int = 10,
    seed: int = 42,
    shuffle_buffer: int = 100000,
    validation_fraction: float = 0.1,
    exclude: list[str] = [],  # noqa: B006
    categorical_features: list[str] = [],  # noqa: B006
    max_vocabulary: int = 10000,
    distribution_strategy: str = "auto",
    mixed_precision: str = "auto",
    checkpoint_uri: str = "",
    model_family: str = "auto",
    gbdt_num_trees: int = 2000,
    gbdt_max_depth: int = 6,
    gbdt_shrinkage: float = 0.1,
):
    """Train a TensorFlow model on the Dataset's train split and export a KServe-ready SavedModel.

    Early stopping watches a validation part carved from ``Split-train``; ``Split-eval`` is never read
    (evaluation reports and gates on it).

    Args:
        data: Dataset with ``Split-train`` (Parquet) and ``Split-eval`` (only its row count is read).
        model: output: ``1/`` (SavedModel, ``serving_default`` on raw features) and ``model_card.json``.
        metrics: output: loss and metrics of the two parts of ``Split-train`` (``train_*``, ``validation_*``),
            in the label's units; never of ``Split-eval``.
        tensorboard_logs: output: TensorBoard event files (one run per attempt). Not named ``tensorboard``:
            google-cloud-pipeline-components' custom-job wrapper has a parameter of that name.
        label: the label column.
        statistics: statistics of the Dataset (``Split-train/FeatureStats.pb``); optional, computed if absent.
        schema: the schema artifact (``schema.pbtxt``); optional.
        task: ``auto`` | ``binary`` | ``multiclass`` | ``regression``.
        hidden_units: hidden layer sizes.
        dropout: dropout after each hidden layer.
        learning_rate: Adam learning rate.
        batch_size: global batch size; 0 chooses it from the training rows (32 to 1024, see core.auto_batch_size).
        epochs: maximum epochs.
        patience: early-stopping patience on the validation loss (0: off).
        seed: random seed.
        shuffle_buffer: rows shuffled together.
        validation_fraction: share of ``Split-train`` rows carved (by row position and ``seed``) for early
            stopping, in (0, 0.5].
        exclude: columns not used as features (each must exist; not the label).
        categorical_features: numeric columns treated as categories.
        max_vocabulary: most frequent values kept per categorical feature.
        distribution_strategy: ``auto`` | ``default`` | ``mirrored`` | ``multi_worker`` (not ``strategy``:
            the Vertex custom-job wrapper uses that name for its scheduling strategy).
        mixed_precision: ``auto`` | ``on`` | ``off``.
        checkpoint_uri: where epoch checkpoints go; empty: ``checkpoints/`` beside the model output, in the
            same task folder (kept across a retry where the output folder persists: Vertex AI, /gcs FUSE, a PVC).
        model_family: ``auto`` (train the network and gradient-boosted trees; keep the trees unless the network's
            validation log loss / mse is lower beyond 2 standard errors; both scores in the card), ``dnn`` or
            ``gbdt`` (YDF trees, CPU).
        gbdt_num_trees: most trees (per class) of the GBDT; early stopping on the validation part decides.
        gbdt_max_depth: depth of each tree.
        gbdt_shrinkage: the GBDT's learning rate.
    """
    import logging
    import os

    from kfpc.components import types
    from kfpc.components._fs import local_path
    from kfpc.components.train import core

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    checkpoint_dir = local_path(checkpoint_uri) if checkpoint_uri else os.path.join(
        os.path.dirname(model.path.rstrip("/")), "checkpoints"
    )
    os.makedirs(tensorboard_logs.path, exist_ok=True)
    result = core.train(
        data.path,
        model.path,
        label=label,
        statistics_dir=statistics.path if statistics is not None else None,
        schema_path=schema.path if schema is not None else None,
        task=task,
        hidden_units=hidden_units,
        dropout=dropout,
        learning_rate=learning_rate,
        batch_size=batch_size,
        epochs=epochs,
        patience=patience,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        tensorboard_dir=tensorboard_logs.path,
        shuffle_buffer=shuffle_buffer,
        validation_fraction=validation_fraction,
        exclude=exclude,
        categorical_features=categorical_features,
        max_vocabulary=max_vocabulary,
        strategy=distribution_strategy,
        mixed_precision=mixed_precision,
        statistics_uri=statistics.uri if statistics is not None else None,
        model_family=model_family,
        gbdt_hyperparameters={"num_trees": gbdt_num_trees, "max_depth": gbdt_max_depth, "shrinkage": gbdt_shrinkage},
    )
    card = result.card
    model.metadata.update(
        {
            types.LABEL: card[types.LABEL],
            types.TASK: card[types.TASK],
            types.CLASSES: card[types.CLASSES],
            types.FEATURES: [feature["name"] for feature in card[types.FEATURES]],
            types.FRAMEWORK: card[types.FRAMEWORK],
            types.KFPC_VERSION: card[types.KFPC_VERSION],
            "model_family": card["model_family"],
        }
    )
    for split, values in result.metrics.items():
        for name, value in values.items():
            metrics.log_metric(f"{split}_{name}", float(value))
    tensorboard_logs.metadata["log_dir"] = tensorboard_logs.uri
