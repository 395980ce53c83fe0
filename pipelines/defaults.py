"""The defaults both pipelines share, in one place: both pipelines' signatures and ``kfpc run``'s
preflight read them from here, so the two pipelines cannot drift apart."""

#: training hyperparameters (``batch_size=0`` chooses it from the training rows)
HIDDEN_UNITS = [64, 32]
DROPOUT = 0.1
LEARNING_RATE = 0.01
BATCH_SIZE = 0
EPOCHS = 100
PATIENCE = 10
SEED = 42
#: share of the rows held out for evaluation (never seen by training)
EVAL_FRACTION = 0.2
#: share of the train split carved out (deterministically) for early stopping and model selection
VALIDATION_FRACTION = 0.1
#: evaluation gates: skill vs the trivial predictor always; accuracy only when asked for (> 0)
MIN_ACCURACY = 0.0
MAX_REGRESSION = 0.01
#: push
NAMESPACE = "kubeflow-user"
PUSH_MODE = "dry_run"
