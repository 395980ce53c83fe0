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
)


def _cmd_run(args: argparse.Namespace) -> int:
    from kfpc.pipelines import local_run, registry

    if args.pipeline not in registry.PIPELINES:
        print(f"kfpc run: {registry.UnknownPipelineError(args.pipeline)}", file=sys.stderr)
        return 2
    try:
        pipeline = registry.build(args.pipeline, target="kfp")
        params = local_run.parse_params(args.param or [], local_run.pipeline_parameters(pipeline))
    except ValueError as err:
        print(f"kfpc run: {err}", file=sys.stderr)
        return 2
    from kfpc.components.preflight.core import PreflightError

    try:
        checked = local_run.preflight(args.pipeline, {**local_run.pipeline_defaults(pipeline), **params})
    except PreflightError as err:
        print(f"kfpc run: {err}", file=sys.stderr)
        return 2
    for warning in checked.warnings if checked else ():
        print(f"warning: {warning}", file=sys.stderr)
    print(f"running {args.pipeline} locally through kfp.local ...", flush=True)
    summary = local_run.run(args.pipeline, params, args.output_dir, verbose=args.verbose, progress=sys.stdout)
    print()
    print(local_run.format_summary(summary))
    return 0 if summary.status == "SUCCESS" else 1


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
    parser = argparse.ArgumentParser(prog="kfpc", description="Kubeflow Pipelines components for tabular ML")
    parser.add_argument("--version", action="version", version=f"kfpc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a pipeline locally through kfp.local and print a summary")
    run.add_argument("pipeline", nargs="?", default="training_pipeline", help="default: training_pipeline")
    run.add_argument("--param", action="append", metavar="KEY=VALUE", help="pipeline parameter (repeatable)")
    run.add_argument("--output-dir", help="folder for the run (default runs/<pipeline>-<time>)")
    run.add_argument("--verbose", action="store_true", help="stream the tasks' logs (default: <run>/run.log)")
    run.set_defaults(func=_cmd_run)

    comp = sub.add_parser("compile", help="compile every pipeline to YAML")
    comp.add_argument("--target", choices=("kfp", "vertex", "all"), default="all")
    comp.add_argument("--output-dir", help="default pipelines/compiled/<target>/")
    comp.add_argument("--image-registry", help="registry for every image reference (private/air-gapped)")
    comp.add_argument("--components", action="store_true",
                      help="also write components/<name>/component.yaml (under --output-dir/components when given)")
    comp.set_defaults(func=_cmd_compile)

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
