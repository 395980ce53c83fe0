"""File names and metadata keys of the artifact layouts, as documented constants (read and written only
through :mod:`kfpc.components.artifacts`).

Layouts follow TFX where TFX has one, so TFX and TFDV tools open our artifacts:

* Dataset:    ``<uri>/Split-<split>/data.parquet`` (one Parquet file per split)
* Statistics: ``<uri>/Split-<split>/FeatureStats.pb`` (``DatasetFeatureStatisticsList``, binary)
* Schema:     ``<uri>/schema.pbtxt`` (``tensorflow_metadata`` ``Schema``, text format)
* Anomalies:  ``<uri>/anomalies.pbtxt`` (``tensorflow_metadata`` ``Anomalies``, text format)
* Model:      ``<uri>/1/saved_model.pb`` (+ ``variables/``): the layout KServe and TF Serving load,
              with ``<uri>/model_card.json`` beside the version folder.
"""

SPLIT_DIR = "Split-{split}"
DATA_FILE = "data.parquet"
STATS_FILE = "FeatureStats.pb"
SCHEMA_FILE = "schema.pbtxt"
ANOMALIES_FILE = "anomalies.pbtxt"
MODEL_VERSION = "1"
MODEL_CARD_FILE = "model_card.json"
SERVING_SIGNATURE = "serving_default"

TRAIN = "train"
EVAL = "eval"

# ---- artifact metadata keys (what the KFP UI and downstream tasks read) ----
# Dataset
SPLIT_NAMES = "split_names"  # list[str]
ROWS = "rows"  # dict split -> int
COLUMNS = "columns"  # dict column -> arrow type string
SOURCE_URI = "source_uri"
# Model
LABEL = "label"
TASK = "task"  # "binary" | "multiclass" | "regression"
CLASSES = "classes"  # list[str], classification only
FEATURES = "features"  # list[str]: the serving signature's inputs
FRAMEWORK = "framework"
KFPC_VERSION = "kfpc_version"
# Validation
ANOMALY_COUNT = "anomaly_count"
ANOMALIES_FOUND = "anomalies_found"
# Evaluation / blessing
BLESSED = "blessed"
