"""One tuning trial as a program: what Katib and Vertex AI run in the training image.

``python -m kfpc.components.tune.trial --data=DIR --label=L --spec=JSON [--base=JSON] --learning_rate=0.01 ...``

Every searched parameter arrives as ``--<name>=<value>`` (Vertex AI appends them; Katib substitutes
``${trialParameters.<name>}``); lists as ``64,32``. The trial trains with :func:`kfpc.components.tune.core.run_trial`
and reports every ``validation_*`` metric twice:

* ``name=value`` lines on stdout, the format Katib's StdOut metrics collector parses;
* to Vertex AI: with ``cloudml-hypertune`` when it is installed; without it, the same JSON line that
  package writes (``/tmp/hypertune/output.metrics``, or ``CLOUD_ML_HP_METRIC_FILE``), as its README documents.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from kfpc.components._fs import local_path

from . import core
from . import spec as S

log = logging.getLogger(__name__)
HYPERTUNE_FILE = "/tmp/hypertune/output.metrics"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    """The fixed arguments and the searched parameters (decoded with the spec).

    Raises:
        SpecError: a searched parameter the spec does not have, or a value outside its choices.
    """
    parser = argparse.ArgumentParser(prog="python -m kfpc.components.tune.trial")
    parser.add_argument("--data", required=True, help="Dataset artifact (URI or path)")
    parser.add_argument("--label", required=True)
    parser.add_argument("--spec", required=True, help="the search space (JSON or YAML text)")
    parser.add_argument("--base", default="{}", help="JSON of the pipeline's training parameters")
    parser.add_argument("--statistics", default="")
    parser.add_argument("--schema", default="")
    parser.add_argument("--task", default="auto")
    parser.add_argument("--validation_fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    known, rest = parser.parse_known_args(argv)
    spec = S.parse_spec(known.spec, origin="--spec")
    searched = {}
    for item in rest:
        if not item.startswith("--") or "=" not in item:
            raise S.SpecError(f"trial argument {item!r}: searched parameters come as --name=value")
        name, text = item[2:].split("=", 1)
        if name not in spec.names:
            raise S.SpecError(f"trial argument --{name}: not a parameter of the search space ({', '.join(spec.names)})")
        searched[name] = spec.parameter(name).decode(text)
    missing = set(spec.names) - set(searched)
    if missing:
        raise S.SpecError(f"trial arguments: no value for {', '.join(sorted(missing))}")
    known.spec_object = spec
    return known, searched


def report(metrics: dict[str, float], objective: str, stream=None) -> str:
    """Print ``name=value`` lines and report the objective to Vertex AI.

    Returns:
        ``hypertune`` or ``file`` (how Vertex AI was told).
    """
    stream = stream or sys.stdout
    for name, value in sorted(metrics.items()):
        if name.startswith("validation_"):
            print(f"{name}={value:.10g}", file=stream, flush=True)
    try:
        import hypertune  # cloudml-hypertune
    except ImportError:
        # cloudml-hypertune is not part of the image; write the line it would write (its documented format)
        path = Path(os.environ.get("CLOUD_ML_HP_METRIC_FILE", HYPERTUNE_FILE))
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"timestamp": time.time(), "trial": str(os.environ.get("CLOUD_ML_TRIAL_ID", 0)),
                objective: str(metrics[objective]), "global_step": "0", "checkpoint_path": ""}
        path.write_text(json.dumps(line, sort_keys=True) + "\n")
        return "file"
    hypertune.HyperTune().report_hyperparameter_tuning_metric(
        hyperparameter_metric_tag=objective, metric_value=metrics[objective])
    return "hypertune"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    args, searched = parse_args(list(sys.argv[1:] if argv is None else argv))
    spec = args.spec_object
    hyperparameters = {**core.baseline_hyperparameters(spec, json.loads(args.base)), **searched}
    log.info("trial with %s", json.dumps(hyperparameters))
    outcome = core.run_trial(
        local_path(args.data), label=args.label, hyperparameters=hyperparameters,
        statistics_dir=local_path(args.statistics) if args.statistics else None,
        schema_path=local_path(args.schema) if args.schema else None, task=args.task,
        validation_fraction=args.validation_fraction, seed=args.seed,
    )
    metrics = dict(outcome["metrics"])
    metrics[spec.metric] = S.objective_value(spec, outcome["validation"])
    how = report(metrics, spec.metric)
    log.info("reported %s=%s (Vertex AI via %s)", spec.metric, metrics[spec.metric], how)
    return 0


if __name__ == "__main__":
    sys.exit(main())
