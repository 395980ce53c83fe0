"""``kfpc serve``: serve a model folder on this machine (the lead's ``pipelines/cli.py`` calls ``register``)."""

from __future__ import annotations

import argparse
import subprocess
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand.

    Args:
        subparsers: from ``ArgumentParser.add_subparsers()``.
    """
    parser = subparsers.add_parser(
        "serve",
        help="serve a trained model with the kfpc KServe model server (v1, v2 and gRPC v2)",
        description="Serve a Model artifact folder (<dir>/1/saved_model.pb + model_card.json) on this machine "
                    "with the same server the serving image runs. Stop with Ctrl-C.",
    )
    parser.add_argument("--model-dir", required=True, help="the Model artifact folder or its version folder")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    parser.add_argument("--grpc-port", type=int, default=8081, help="gRPC port (default 8081); 0 disables gRPC")
    parser.add_argument("--model-name", default="model", help="the model name in URLs (default 'model')")
    parser.add_argument("--no-batching", action="store_true", help="one model call per request")
    parser.add_argument("--payload-log", default="", help="JSONL file or CloudEvents URL for request/response logs")
    parser.add_argument("--log-format", choices=["json", "text"], default="text", help="log line format")
    parser.set_defaults(func=run)


def command(args: argparse.Namespace) -> list[str]:
    """The server command line ``kfpc serve`` runs."""
    line = [sys.executable, "-m", "kfpc.serving", "--model_dir", args.model_dir, "--model_name", args.model_name,
            "--http_port", str(args.port), "--log_format", args.log_format]
    if args.grpc_port:
        line += ["--grpc_port", str(args.grpc_port)]
    else:
        line += ["--enable_grpc", "false"]
    if args.no_batching:
        line += ["--batching", "false"]
    if args.payload_log:
        line += ["--payload_log", args.payload_log]
    return line


def run(args: argparse.Namespace) -> int:
    """Run the server in the foreground until it stops; returns its exit code."""
    # A child process, not an in-process call: kserve parses sys.argv when it is imported, and the
    # server must see its own flags, not ``kfpc serve``'s.
    print(f"serving {args.model_dir} as {args.model_name!r} on http://127.0.0.1:{args.port} "
          f"(v1: /v1/models/{args.model_name}:predict, v2: /v2/models/{args.model_name}/infer)", file=sys.stderr)
    try:
        return subprocess.call(command(args))
    except KeyboardInterrupt:
        return 130
