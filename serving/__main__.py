"""Entry point of the serving image: ``python -m kfpc.serving --model_dir /mnt/models --model_name NAME``.

The only place argv is parsed. KServe's own flags (``--http_port``, ``--grpc_port``, ``--model_name``,
``--enable_grpc``, ...) are accepted as they are, so an InferenceService's ``args`` read the same as for
KServe's built-in servers.
"""

from __future__ import annotations

import argparse
import os
import sys

from kfpc.components import defaults as D


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The server's argument parser: KServe's flags plus kfpc's."""
    from kserve import model_server

    parser = argparse.ArgumentParser(prog="python -m kfpc.serving", parents=[model_server.parser],
                                     description="Serve a kfpc model (SavedModel + model_card.json) with KServe.")
    parser.add_argument("--model_dir", required=True,
                        help="the Model artifact folder (<dir>/1/saved_model.pb; highest version wins) or a version "
                             "folder; in KServe the storage initializer puts it at /mnt/models")
    parser.add_argument("--batching", type=_bool, default=True, help="dynamic batching of concurrent requests")
    parser.add_argument("--max_batch_size", type=int, default=D.MAX_BATCH_SIZE, help="most rows in one batched model call")
    parser.add_argument("--max_batch_wait_ms", type=float, default=D.MAX_BATCH_WAIT_MS,
                        help="how long an idle model waits to fill a batch; 0 runs at once and batches only "
                             "requests that arrive while the model is busy")
    parser.add_argument("--max_rows", type=int, default=D.MAX_ROWS, help="most rows in one request")
    parser.add_argument("--max_string_length", type=int, default=D.MAX_STRING_LENGTH, help="longest string feature value")
    parser.add_argument("--max_request_bytes", type=int, default=D.MAX_REQUEST_BYTES, help="largest request body")
    parser.add_argument("--payload_log", default="",
                        help="log every request and response: a .jsonl file path or a CloudEvents http(s) URL")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the HTTP and gRPC ports bind (default 127.0.0.1: this machine only; the "
                             "serving image passes 0.0.0.0)")
    parser.add_argument("--header_timeout_s", type=float, default=D.HEADER_TIMEOUT_S,
                        help="seconds a request's headers may take to arrive (then 408 and the connection closed)")
    parser.add_argument("--body_timeout_s", type=float, default=D.BODY_TIMEOUT_S,
                        help="seconds a request's body may take to arrive (then 408 and the connection closed)")
    parser.add_argument("--exit_with_parent", type=_bool, default=False,
                        help="stop when the process that started the server exits (kfpc serve, LocalServer)")
    parser.add_argument("--registered_model_name", default="",
                        help="model registry name of the served model (default: the model card's registry section)")
    parser.add_argument("--registered_version", default="",
                        help="model registry version of the served model, reported in a response header, the v2 "
                             "model_version and every payload-log record (default: the model card's registry section)")
    parser.add_argument("--log_format", choices=["json", "text"], default="json", help="log line format")
    parser.add_argument("--log_level", default="INFO", help="log level")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the model and serve until stopped.

    Returns:
        the exit code.
    """
    args = build_parser().parse_args(argv)
    from kfpc.serving.model import KfpcModel, ModelOptions
    from kfpc.serving.observability import Observer, configure_logging
    from kfpc.serving.server import serve

    configure_logging(args.log_format, args.log_level)
    if args.workers != 1:
        # The batcher and the metrics live in one process; KServe's multi-process mode would bypass both.
        raise SystemExit(f"--workers {args.workers}: the kfpc server runs one worker per pod; scale with replicas")
    for name in ("max_batch_size", "max_rows", "max_request_bytes", "max_string_length"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1, got {getattr(args, name)}")
    for name in ("header_timeout_s", "body_timeout_s"):
        if not getattr(args, name) > 0:
            raise SystemExit(f"--{name} must be more than 0, got {getattr(args, name)}")
    parent = os.getppid() if args.exit_with_parent else None  # (read first: the parent may exit during loading)
    options = ModelOptions(batching=args.batching, max_batch_size=args.max_batch_size,
                           max_batch_wait_ms=args.max_batch_wait_ms, max_rows=args.max_rows,
                           max_string_length=args.max_string_length,
                           registered_model_name=args.registered_model_name,
                           registered_version=args.registered_version)
    observer = Observer(args.model_name, payload_log=args.payload_log or None)
    model = KfpcModel(args.model_name, args.model_dir, options, observer)
    serve(model, http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=args.enable_grpc,
          max_request_bytes=args.max_request_bytes, host=args.host, header_timeout_s=args.header_timeout_s,
          body_timeout_s=args.body_timeout_s, enable_docs=args.enable_docs_url, exit_with_parent=parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
