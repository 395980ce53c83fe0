"""The one source of defaults: training, evaluation gates, push resources and serving limits.

Plain Python (no kfp, no TensorFlow) so that every layer can read it: the cores, both pipelines
(:mod:`kfpc.pipelines.defaults` re-exports this module), the ``kfpc`` CLI and the model server.

The KFP component functions are the one exception: KFP copies a component's source into its YAML and runs
it alone in the container, so a signature default must be a literal there. ``tests/test_defaults.py``
checks every such literal against this module, so a change here that misses a component fails the tests.
"""

# ---- training hyperparameters
#: hidden layer sizes (a tuple: callers that need a list, KFP signatures, copy it)
HIDDEN_UNITS = (64, 32)
DROPOUT = 0.1
#: Adam learning rate: 0.01 with early stopping converges on tables of hundreds to millions of rows
LEARNING_RATE = 0.01
#: 0 chooses it from the training rows (32 for hundreds, 1024 from ~100k; train.core.auto_batch_size)
BATCH_SIZE = 0
#: an upper bound: early stopping on the validation loss ends most runs well before it
EPOCHS = 100
#: epochs without a better validation loss before stopping (0: off)
PATIENCE = 10
SEED = 42
SHUFFLE_BUFFER = 100_000
#: share of the rows held out for evaluation (never seen by training)
EVAL_FRACTION = 0.2
#: share of the train split carved out (deterministically) for early stopping and model selection
VALIDATION_FRACTION = 0.1

# ---- evaluation gates: skill vs the trivial predictor always; accuracy only when asked for (> 0)
MIN_ACCURACY = 0.0
#: how much worse than the served model a candidate may be (ROC/PR AUC: absolute; RMSE: relative)
MAX_REGRESSION = 0.01

# ---- push
PUSH_MODE = "dry_run"
#: namespace of the push component and ``kfpc push`` (any cluster has it)
NAMESPACE = "default"
#: namespace the pipelines push to: Kubeflow runs a pipeline inside a user's profile namespace
PIPELINE_NAMESPACE = "kubeflow-user"
#: per predictor replica (Kubernetes quantities)
CPU_REQUEST = "1"
MEMORY_REQUEST = "2Gi"
CPU_LIMIT = "2"
MEMORY_LIMIT = "4Gi"
GPU = 0
MIN_REPLICAS = 1
MAX_REPLICAS = 3
#: seconds to wait for Ready per rollout step
TIMEOUT_S = 600
#: canary promotion: seconds of healthy serving, then the thresholds it is judged by
BAKE_S = 300.0
MAX_ERROR_RATE = 0.01
MAX_P99_LATENCY_MS = 1000.0
MIN_REQUESTS = 50
#: canary vs the stable revision (when its series are read): how far the canary's 5xx share may exceed the
#: stable's (absolute), and the factor its p99 latency may exceed the stable's by
MAX_ERROR_RATE_INCREASE = 0.005
MAX_P99_RATIO = 1.5
#: Vertex AI: seconds per long-running operation (model upload, endpoint creation, deployment)
VERTEX_TIMEOUT_S = 1800
#: Vertex AI deployment of push_vertex: serving container (``kfpc`` or ``tensorflow``), the prebuilt TF
#: container's version, machine type, replicas, and the new model's share of the endpoint's traffic
VERTEX_CONTAINER = "kfpc"
VERTEX_TF_VERSION = "2.15"
VERTEX_MACHINE_TYPE = "n1-standard-4"
VERTEX_MIN_REPLICA_COUNT = 1
VERTEX_MAX_REPLICA_COUNT = 1
VERTEX_TRAFFIC_PERCENT = 100
#: monitoring alerts: requests in an alert window before error-rate, latency and throughput alerts may fire
ALERT_MIN_REQUESTS = 100

# ---- serving limits (the kfpc model server, per model / per request)
MAX_BATCH_SIZE = 1024
MAX_BATCH_WAIT_MS = 0.0
MAX_ROWS = 10_000
MAX_STRING_LENGTH = 4_096
MAX_REQUEST_BYTES = 16 << 20
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
