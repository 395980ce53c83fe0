"""What a freshly built family image must do before anyone pushes it: run inside the image as its user.

    python3 /tmp/kfpc-smoke.py FAMILY

``build.py build`` (``make images``) mounts this file read-only into each image it builds and runs it as the
image's user (UID 10001) with the image's own ``python3``; a non-zero exit fails the build. The image tier
runs it too. Checks, by family:

* every image: Python 3.11, ``kfpc`` importable from the image's environment; the images that run pipeline
  tasks (all but ``serving``): the KFP executor entry point;
* ``data``: pyarrow and the tensorflow-metadata protos;
* ``tf``, ``tf-gpu``, ``serving``: TensorFlow imports; ``tf``/``tf-gpu`` draw a plot with matplotlib (the
  evaluation report's plots come from it);
* ``tf-gpu``: every CUDA/cuDNN library of the ``tensorflow[and-cuda]`` wheels loads (``dlopen``) where no GPU
  or driver is present, TensorFlow lists no GPU, and kfpc's placement falls back to the CPU with its one
  warning (``distribution.cpu_fallback_message``) instead of failing;
* ``deploy``: the KServe SDK and the Vertex AI client;
* ``serving``: the KServe model server and kfpc's server module.

Prints one ``ok <check>`` line per check and ``smoke <family>: N checks passed``; on a failure, the check and
the error, exit 1.
"""

from __future__ import annotations

import ctypes
import io
import sys
import traceback

CHECKS: dict[str, list[str]] = {
    "data": ["python", "kfpc", "executor", "pyarrow", "metadata"],
    "tf": ["python", "kfpc", "executor", "tensorflow", "plot"],
    "tf-gpu": ["python", "kfpc", "executor", "tensorflow", "plot", "cuda", "cpu_fallback"],
    "deploy": ["python", "kfpc", "executor", "kserve", "aiplatform"],
    "serving": ["python", "kfpc", "tensorflow", "model_server"],
}


def check_python() -> str:
    assert sys.version_info[:2] == (3, 11), f"python {sys.version.split()[0]}, expected 3.11"
    return sys.version.split()[0]


def check_kfpc() -> str:
    import kfpc.components

    return kfpc.components.__file__


def check_executor() -> str:
    import kfp
    import kfp.dsl.executor_main  # noqa: F401 - the command every compiled task runs

    return f"kfp {kfp.__version__}"


def check_pyarrow() -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"x": [1, None, 3]}), sink)
    assert pq.read_table(io.BytesIO(sink.getvalue())).column("x").null_count == 1
    return pa.__version__


def check_metadata() -> str:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    return statistics_pb2.DatasetFeatureStatisticsList.DESCRIPTOR.full_name


def check_tensorflow() -> str:
    import tensorflow as tf

    assert float(tf.reduce_sum(tf.constant([1.0, 2.0]))) == 3.0
    return tf.__version__


def check_plot() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    out = io.BytesIO()
    fig.savefig(out, format="png")
    assert out.getvalue()[:4] == b"\x89PNG"
    return f"matplotlib {matplotlib.__version__}"


def check_cuda() -> str:
    from kfpc.components.train import distribution

    libraries = distribution.cuda_libraries()
    wanted = ("libcudart", "libcublas", "libcublasLt", "libcudnn", "libcufft", "libcusolver", "libcusparse", "libnccl")
    missing = [name for name in wanted if not any(lib.startswith(name + ".so") for lib in libraries)]
    assert not missing, f"CUDA libraries missing from the image: {missing} (found {sorted(libraries)})"
    # Dependencies first (cuDNN and cuBLAS need the runtime, cuSOLVER needs cuBLAS and cuSPARSE); RTLD_GLOBAL
    # as TensorFlow loads them. The driver (libcuda.so.1) is the node's, never in the image.
    loaded, pending = [], sorted(libraries, key=lambda n: (not n.startswith("libcudart"), not n.startswith("libnvJitLink"), n))
    for _ in range(len(pending)):
        failed = []
        for name in pending:
            try:
                ctypes.CDLL(libraries[name], mode=ctypes.RTLD_GLOBAL)
                loaded.append(name)
            except OSError as err:
                failed.append((name, str(err)))
        if not failed or len(failed) == len(pending):
            break
        pending = [name for name, _ in failed]
    else:
        failed = []
    unexplained = [(n, e) for n, e in failed if "libcuda.so" not in e]
    assert not unexplained, f"CUDA libraries that do not load: {unexplained}"
    return f"{len(loaded)} of {len(libraries)} loaded" + (
        f"; {', '.join(n for n, _ in failed)} need the node's driver (libcuda.so.1)" if failed else "")


def check_cpu_fallback() -> str:
    import logging

    import tensorflow as tf

    from kfpc.components.train import distribution

    assert tf.config.list_physical_devices("GPU") == [], "a GPU is visible: run this check where none is"
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger(distribution.__name__).addHandler(handler)
    placement = distribution.select_strategy()
    assert placement.devices == ["/cpu:0"], placement.devices
    assert any("no GPU is visible" in r for r in records), records
    return next(r for r in records if "no GPU is visible" in r)[:100] + "..."


def check_kserve() -> str:
    import kserve

    return kserve.__name__


def check_aiplatform() -> str:
    from google.cloud import aiplatform

    return aiplatform.__version__


def check_model_server() -> str:
    import kserve  # noqa: F401

    from kfpc.serving import server  # noqa: F401

    return "kfpc.serving.server"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: smoke.py FAMILY (one of {sorted(CHECKS)})", file=sys.stderr)
        return 2
    family = argv[0]
    for name in CHECKS[family]:
        try:
            detail = globals()[f"check_{name}"]()
        except Exception as err:  # noqa: BLE001 - every failure is reported the same way
            print(f"FAILED {name}: {type(err).__name__}: {err}", file=sys.stderr)
            traceback.print_exc()
            return 1
        print(f"ok {name}: {detail}", flush=True)
    print(f"smoke {family}: {len(CHECKS[family])} checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
