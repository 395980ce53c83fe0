"""Run kfpc train() in a fresh interpreter (distribution, preemption and round-trip tests).

argv[1] is JSON: {"dataset", "model_dir", "label", "kwargs", "logical_cpus", "predict"}. The last stdout
line is a JSON summary.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    args = json.loads(sys.argv[1])
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.get("logical_cpus"):
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args["logical_cpus"])]
        )
    if args.get("predict"):
        # Round trip: load the exported model with nothing but TensorFlow and predict raw rows.
        from kfpc.components import contract

        predictor = contract.load_predictor(args["model_dir"])
        outputs = predictor.predict(args["predict"])
        print(json.dumps({k: v.tolist() for k, v in outputs.items()}))
        return 0
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from kfpc.components.train import core

    result = core.train(args["dataset"], args["model_dir"], label=args["label"], verbose=0, **args.get("kwargs", {}))
    print(json.dumps({"metrics": result.metrics, "placement": result.placement, "epochs": result.epochs_trained,
                      "resumed_from_epoch": result.resumed_from_epoch}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
