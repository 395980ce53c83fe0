"""The ``kfpc`` command line: run, compile, components, validate, serve, submit, schedule.

This is the only place argv is parsed. Subcommands that belong to one area live in that area's module and
add themselves through ``register(subparsers)``; heavy libraries are imported when a command runs, not
when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kfpc.components import __version__

#: modules that add their own subcommands
_PLUGINS = (
    "kfpc.components.validate.cli",
    "kfpc.components.push.cli",
    "kfpc.components.registry.cli",
    "kfpc.serving.cli",
    "kfpc.pipelines.submit",
    "kfpc.pipelines.schedule",
    "kfpc.pipelines.upload",
)


RUN_EXAMPLES = """examples:
  kfpc run                                          # training_pipeline on the bundled penguins table
  kfpc run training_pipeline --param epochs=5 --param learning_rate=0.003
  kfpc run training_pipeline --params-file params.yaml --output-dir runs/try1
  kfpc params retraining_pipeline                   # what a pipeline takes

where ``params.yaml`` holds parameters by name (YAML or JSON)::

    epochs: 20
    learning_rate: 0.003
    exclude_columns: [island]
"""

EXIT_CODES = """exit codes:
  0  the command (or pipeline run) succeeded
  1  the pipeline run failed (a task raised); the summary names the task and its error
  2  usage: unknown command, parameter or value; preflight found a problem before anything ran
  3  a gate stopped the run: anomalies in the data (validation-gate), or a model not blessed (nothing pushed)
"""


def parameter_table(name: str) -> str:
    """The parameters of pipeline ``name``: type, default and description, one block each."""
    import textwrap

    from kfpc.pipelines import local_run, registry

    pipeline = registry.build(name, target="kfp")
    spec = pipeline.pipeline_spec.root.input_definitions.parameters
    defaults = local_run.pipeline_defaults(pipeline)
    kinds = local_run.pipeline_parameters(pipeline)
    lines = [f"parameters of {name} (--param NAME=VALUE, or --params-file FILE with a JSON/YAML mapping):", ""]
    for param in sorted(spec):
        kind = kinds[param].replace("NUMBER_", "").lower()
        default = f"default {defaults[param]!r}" if param in defaults else "required"
        lines.append(f"  {param} ({kind}, {default})")
        doc = " ".join(spec[param].description.split())
        lines += textwrap.wrap(doc, width=100, initial_indent="      ", subsequent_indent="      ") if doc else []
    return "\n".join(lines)


class _RunHelp(argparse.Action):
    """``kfpc run [PIPELINE] --help``: the usual help, then the chosen pipeline's parameters."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from kfpc.pipelines import registry

        parser.print_help()
        name = getattr(namespace, "pipeline", None) or "training_pipeline"
        print()
        if name in registry.PIPELINES:
            print(parameter_table(name))
        else:
            print(f"kfpc run: {registry.UnknownPipelineError(name)}")
        parser.exit()


def _load_params_file(path: str | None) -> dict:
    if not path:
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(open(path, encoding="utf-8").read())  # YAML is a superset of JSON
    except OSError as err:
        raise ValueError(f"--params-file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"--params-file {path}: not JSON or YAML: {err}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"--params-file {path}: expected a mapping of parameter name to value, "
                         f"got {type(loaded).__name__}")
    return {str(k): v for k, v in loaded.items()}


def _cmd_run(args: argparse.Namespace) -> int:
    from kfpc.pipelines import local_run, registry
    from kfpc.pipelines.remote import _coerce

    if args.pipeline not in registry.PIPELINES:
        print(f"kfpc run: {registry.UnknownPipelineError(args.pipeline)}", file=sys.stderr)
        return local_run.EXIT_USAGE
    try:
        pipeline = registry.build(args.pipeline, target="kfp")
        allowed = local_run.pipeline_parameters(pipeline)
        params = {}
        for key, value in _load_params_file(args.params_file).items():
            if key not in allowed:
                raise ValueError(f"--params-file {args.params_file}: unknown parameter {key!r}; "
                                 f"{args.pipeline} takes: {', '.join(sorted(allowed))}")
            params[key] = _coerce(key, value, allowed[key], f"--params-file {args.params_file}")
        params.update(local_run.parse_params(args.param or [], allowed))  # --param wins over the file
    except ValueError as err:
        print(f"kfpc run: {err}", file=sys.stderr)
        return local_run.EXIT_USAGE
    from kfpc.components.preflight.core import PreflightError

    try:
        checked = local_run.preflight(args.pipeline, {**local_run.pipeline_defaults(pipeline), **params})
    except PreflightError as err:
        print(f"kfpc run: {err}", file=sys.stderr)
        return local_run.EXIT_USAGE
    for warning in checked.warnings if checked else ():
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        import json

        resolved = {**local_run.pipeline_defaults(pipeline), **params}
        print(f"{args.pipeline}: parameters checked (preflight passed); nothing was run. Resolved parameters:")
        print(json.dumps(resolved, indent=2, sort_keys=True, default=str))
        return local_run.EXIT_OK
    print(f"running {args.pipeline} locally through kfp.local ...", flush=True)
    summary = local_run.run(args.pipeline, params, args.output_dir, verbose=args.verbose, progress=sys.stdout)
    print()
    print(local_run.format_summary(summary))
    return local_run.exit_code(summary)


def _cmd_params(args: argparse.Namespace) -> int:
    from kfpc.pipelines import registry

    if args.pipeline not in registry.PIPELINES:
        print(f"kfpc params: {registry.UnknownPipelineError(args.pipeline)}", file=sys.stderr)
        return 2
    print(parameter_table(args.pipeline))
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from kfpc.pipelines import compiler

    targets = compiler.registry.TARGETS if args.target == "all" else (args.target,)
    for target in targets:
        out = None
        if args.output_dir:
            out = args.output_dir if len(targets) == 1 else f"{args.output_dir}/{target}"
        for path in compiler.compile_all(target, out, image_registry=args.image_registry):
            print(path)
    if args.components:
        root = f"{args.output_dir}/components" if args.output_dir else None
        for path in compiler.compile_components(root, image_registry=args.image_registry):
            print(path)
    return 0


def _cmd_components(args: argparse.Namespace) -> int:
    from kfpc.pipelines import compiler

    for name in compiler.COMPONENTS:
        try:
            component = compiler.load_component(name)
        except (ImportError, AttributeError) as err:
            print(f"{name:<14} (unavailable: {err})")
            continue
        doc = (component.description or "").strip().splitlines()
        print(f"{name:<14} {doc[0] if doc else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``kfpc`` argument parser."""
    parser = argparse.ArgumentParser(prog="kfpc", description="Kubeflow Pipelines components for tabular ML",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kfpc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a pipeline locally through kfp.local and print a summary",
                         add_help=False, epilog=RUN_EXAMPLES + "\n" + EXIT_CODES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("-h", "--help", action=_RunHelp, help="this help and the pipeline's parameters")
    run.add_argument("pipeline", nargs="?", default="training_pipeline", help="default: training_pipeline")
    run.add_argument("--param", action="append", metavar="KEY=VALUE", help="pipeline parameter (repeatable)")
    run.add_argument("--params-file", metavar="FILE", help="JSON or YAML mapping of parameters (--param wins)")
    run.add_argument("--output-dir", help="folder for the run (default runs/<pipeline>-<time>)")
    run.add_argument("--verbose", action="store_true", help="stream the tasks' logs (default: <run>/run.log)")
    run.add_argument("--dry-run", action="store_true",
                     help="check the parameters and the data (preflight), print the resolved parameters, run nothing")
    run.set_defaults(func=_cmd_run)

    comp = sub.add_parser("compile", help="compile every pipeline to YAML")
    comp.add_argument("--target", choices=("kfp", "vertex", "all"), default="all")
    comp.add_argument("--output-dir", help="default pipelines/compiled/<target>/")
    comp.add_argument("--image-registry", help="registry for every image reference (private/air-gapped)")
    comp.add_argument("--components", action="store_true",
                      help="also write components/<name>/component.yaml (under --output-dir/components when given)")
    comp.set_defaults(func=_cmd_compile)

    params = sub.add_parser("params", help="list a pipeline's parameters with type, default and description")
    params.add_argument("pipeline", nargs="?", default="training_pipeline", help="default: training_pipeline")
    params.set_defaults(func=_cmd_params)

    lst = sub.add_parser("components", help="list the components, one line each")
    lst.set_defaults(func=_cmd_components)

    for module_name in _PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kfpc`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
