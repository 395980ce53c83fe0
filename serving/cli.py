"""``kfpc serve``: serve a model folder on this machine (the lead's ``pipelines/cli.py`` calls ``register``)."""

from __future__ import annotations

import argparse
import signal
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
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    parser.add_argument("--grpc-port", type=int, default=8081, help="gRPC port (default 8081); 0 disables gRPC")
    parser.add_argument("--model-name", default="model", help="the model name in URLs (default 'model')")
    parser.add_argument("--no-batching", action="store_true", help="one model call per request")
    parser.add_argument("--payload-log", default="", help="JSONL file or CloudEvents URL for request/response logs")
    parser.add_argument("--log-format", choices=["json", "text"], default="text", help="log line format")
    parser.add_argument("--enable-docs", action="store_true", help="serve /openapi.json and /docs (default off)")
    parser.add_argument("--registry-uri", default="",
                        help="model registry for a --model-dir model-registry://<name>/<version or alias> "
                             "(kubeflow: http(s)://host:port; vertex: projects/<p>/locations/<region>)")
    parser.add_argument("--registry-backend", choices=("kubeflow", "vertex"), default="kubeflow")
    parser.add_argument("--registered-model-name", default="", help="registry name reported in responses")
    parser.add_argument("--registered-version", default="",
                        help="registry version reported in responses (default: the model card's registry section)")
    parser.set_defaults(func=run)


def command(args: argparse.Namespace) -> list[str]:
    """The server command line ``kfpc serve`` runs."""
    line = [sys.executable, "-m", "kfpc.serving", "--model_dir", args.model_dir, "--model_name", args.model_name,
            "--http_port", str(args.port), "--host", args.host, "--log_format", args.log_format,
            "--exit_with_parent", "true"]
    if args.grpc_port:
        line += ["--grpc_port", str(args.grpc_port)]
    else:
        line += ["--enable_grpc", "false"]
    if args.no_batching:
        line += ["--batching", "false"]
    if args.payload_log:
        line += ["--payload_log", args.payload_log]
    if getattr(args, "enable_docs", False):
        line += ["--enable_docs_url", "true"]
    if getattr(args, "registered_version", ""):
        line += ["--registered_model_name", args.registered_model_name, "--registered_version", args.registered_version]
    return line


def resolve_registry_uri(args: argparse.Namespace) -> None:
    """A ``model-registry://name/ref`` --model-dir becomes the registered artifact's folder, and the registered
    name and version are reported by the server."""
    if not args.model_dir.startswith("model-registry://"):
        return
    from kfpc.components._fs import local_path
    from kfpc.components.registry import core

    if not args.registry_uri:
        raise SystemExit(f"kfpc serve: --model-dir {args.model_dir} needs --registry-uri")
    try:
        version = core.resolve_storage_uri(args.model_dir, core.open_registry(args.registry_backend, args.registry_uri))
    except core.RegistryError as err:
        raise SystemExit(f"kfpc serve: {err}") from None
    args.model_dir = str(local_path(version.uri))
    args.registered_model_name, args.registered_version = version.model, version.version


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"  # (every interface: this machine's own address works)
    return f"[{host}]" if ":" in host else host


def run(args: argparse.Namespace) -> int:
    """Run the server in the foreground until it stops; returns its exit code.

    SIGTERM, SIGINT (Ctrl-C) and SIGHUP to ``kfpc serve`` are passed on to the server, which stops
    gracefully; the server also stops by itself if ``kfpc serve`` dies without passing them on (SIGKILL).
    """
    resolve_registry_uri(args)
    # A child process, not an in-process call: kserve parses sys.argv when it is imported, and the
    # server must see its own flags, not ``kfpc serve``'s. Its own session: a terminal's Ctrl-C reaches
    # only this process, which passes it on once.
    print(f"serving {args.model_dir} as {args.model_name!r} on http://{_url_host(args.host)}:{args.port} "
          f"(bound to {args.host}; v1: /v1/models/{args.model_name}:predict, v2: /v2/models/{args.model_name}/infer)",
          file=sys.stderr)
    process = subprocess.Popen(command(args), start_new_session=True)

    def forward(signum: int, frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, forward) for sig in handled}
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:  # (an exception here: never leave the server behind)
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return 128 - code if code < 0 else code
