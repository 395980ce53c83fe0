"""Run a kfpc pipeline on this machine through ``kfp.local`` and summarize the run.

``kfp.local``'s SubprocessRunner executes each Lightweight Python component in a subprocess of the
current interpreter (``use_venv=False``), so the tasks import the installed kfpc package exactly as they
do inside the family image on a cluster.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import TextIO

from kfpc.components._progress import MARK
from kfpc.pipelines import registry

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '?([^' ]+)'?")
_END = re.compile(r"Task '?([^' ]+)'? finished with status (\w+)")


@dataclasses.dataclass
class TaskSummary:
    """One task of a local run."""

    name: str
    status: str = "SKIPPED"
    seconds: float | None = None
    outputs: dict = dataclasses.field(default_factory=dict)  # parameter outputs
    artifacts: dict = dataclasses.field(default_factory=dict)  # output name -> {"path", "metadata"}


@dataclasses.dataclass
class RunSummary:
    """What a local run did: per task status, duration, outputs; where things landed."""

    pipeline: str
    run_dir: str
    status: str
    seconds: float
    parameters: dict
    tasks: list[TaskSummary]
    error: str = ""
    versions: dict = dataclasses.field(default_factory=dict)  # kfpc and the libraries the tasks ran with
    images: dict = dataclasses.field(default_factory=dict)  # family -> the image each task names when compiled
    reports: dict = dataclasses.field(default_factory=dict)  # "<task>.<output>" -> reports/<file>.html|.md

    def task(self, name: str) -> TaskSummary | None:
        """The task called ``name`` (KFP may suffix repeated names with -2, -3, ...)."""
        return next((t for t in self.tasks if t.name == name), None)

    def to_json(self) -> str:
        """The summary as JSON (written to ``<run_dir>/summary.json``)."""
        return json.dumps(dataclasses.asdict(self), indent=2, default=str)


class _Progress:
    """Where a run's progress goes: task starts and ends, and the tasks' own progress lines.

    On a terminal a task's progress lines replace each other on one line (a live status line); anywhere
    else (CI logs, files) each is a plain line of its own.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.live = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.dangling = False

    def clear(self) -> None:
        """Remove a live status line left on the terminal."""
        if self.dangling and self.stream is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.dangling = False

    def write_line(self, text: str, transient: bool = False) -> None:
        if self.stream is None:
            return
        if self.dangling:
            self.stream.write("\r\x1b[K")
            self.dangling = False
        if transient and self.live:
            self.stream.write(text[: shutil.get_terminal_size((120, 20)).columns - 1])
            self.dangling = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class _Tee(io.TextIOBase):
    """The run log, which also hands the tasks' progress lines (``[kfpc] ...``) to :class:`_Progress`."""

    def __init__(self, log: TextIO, progress: _Progress) -> None:
        super().__init__()
        self.log, self.progress, self.pending = log, progress, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        self.pending += text
        *complete, self.pending = self.pending.split("\n")
        for chunk in complete:
            at = chunk.find(MARK)
            if at >= 0:
                self.progress.write_line("    " + _ANSI.sub("", chunk[at + len(MARK):]).rstrip(), transient=True)
        return len(text)

    def flush(self) -> None:
        self.log.flush()


class _TaskTimer(logging.Filter):
    """Collects task start/end times from kfp.local's log records, and reports them as they happen.

    A filter on the root logger, not a handler: kfp.local replaces the root logger's handlers while a
    pipeline runs, but leaves its filters alone.
    """

    def __init__(self, progress: _Progress | None = None) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.finished: dict[str, tuple[str, float]] = {}
        self.attempts: dict[str, int] = {}
        self.order: list[str] = []
        self.progress = progress or _Progress(None)

    def filter(self, record: logging.LogRecord) -> bool:
        message = _ANSI.sub("", record.getMessage())
        if match := _START.search(message):
            name = match.group(1)
            self.started[name] = record.created
            self.attempts[name] = self.attempts.get(name, 0) + 1
            if name not in self.order:
                self.order.append(name)
            attempt = f" (attempt {self.attempts[name]})" if self.attempts[name] > 1 else ""
            self.progress.write_line(f"  {name:<16} started{attempt}")
        elif match := _END.search(message):
            name, status = match.group(1), match.group(2)
            self.finished[name] = (status, record.created)
            seconds = record.created - self.started.get(name, record.created)
            self.progress.write_line(f"  {name:<16} {status:<8} {seconds:6.1f} s")
        return True


def task_error(log_text: str, task_name: str) -> str:
    """The exception a failed task raised, cut from the run log (the last traceback of that task)."""
    text = _ANSI.sub("", log_text)
    start = text.rfind(f"Executing task '{task_name}'")
    end = text.find(f"Task '{task_name}' finished with status FAILURE", start)
    section = text[start:end] if start >= 0 and end > start else ""
    tb = section.rfind("Traceback (most recent call last):")
    if tb < 0:
        return ""
    lines = [line.strip() for line in section[tb:].splitlines()]
    # the exception starts at the first line after the traceback frames that is not a frame or code line
    for i in range(1, len(lines)):
        if lines[i] and not lines[i].startswith(("File ", "^", "~")) and not lines[i - 1].startswith("File "):
            return "\n".join(line for line in lines[i:] if line)
    return ""


def parse_params(pairs: list[str], allowed: dict | None = None) -> dict:
    """Parse ``key=value`` strings into typed pipeline parameters, exactly as ``kfpc submit`` does.

    Args:
        pairs: e.g. ``["label=price", "epochs=20"]``.
        allowed: the pipeline's parameters (name -> ``STRING``, ``NUMBER_INTEGER``, ``LIST`` ...); unknown
            names and values of the wrong type raise ``ValueError``. Without it, values are JSON when they
            parse (numbers, booleans, lists), else text.
    """
    from kfpc.pipelines.remote import _coerce

    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--param expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if allowed is not None and key not in allowed:
            raise ValueError(f"unknown parameter {key!r}; this pipeline takes: {', '.join(sorted(allowed))}")
        params[key] = _coerce(key, raw, allowed.get(key) if allowed else None, "--param")
    return params


def pipeline_parameters(pipeline) -> dict[str, str]:
    """The pipeline's input parameters as ``name -> type`` (``STRING``, ``NUMBER_INTEGER``, ...)."""
    spec = pipeline.pipeline_spec
    from kfp.pipeline_spec import pipeline_spec_pb2

    kinds = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    return {
        name: kinds.Name(param.parameter_type)
        for name, param in spec.root.input_definitions.parameters.items()
    }


def pipeline_defaults(pipeline) -> dict:
    """The pipeline's parameter defaults as Python values (parameters without a default are absent)."""
    from google.protobuf import json_format

    from kfpc.pipelines.remote import _coerce

    kinds = pipeline_parameters(pipeline)
    return {
        # protobuf Values hold every number as a double: an int parameter's default comes back as its type
        name: _coerce(name, json_format.MessageToDict(param.default_value), kinds[name], "default")
        for name, param in pipeline.pipeline_spec.root.input_definitions.parameters.items()
        if param.HasField("default_value")
    }


#: pipeline parameters that preflight.check_parameters takes under the same names
_PREFLIGHT_PARAMETERS = (
    "task", "push_mode", "model_name", "namespace", "canary_traffic_percent", "promote", "prometheus_url",
    "prometheus_selector", "eval_fraction", "validation_fraction",
    "hidden_units", "dropout", "learning_rate", "batch_size", "epochs", "patience", "min_accuracy",
    "max_regression", "eval_config_json",
)


def preflight(name: str, params: dict):
    """Run the pipeline's preflight checks in this process, in seconds, before kfp.local starts anything.

    Args:
        name: the pipeline (a key of ``registry.PIPELINES``).
        params: the run's parameters, defaults included (as :func:`run` completes them).
    Returns:
        The ``PreflightResult``, or ``None`` for a pipeline without a ``label`` parameter.
    Raises:
        PreflightError: every problem found, each naming the parameter or column and the fix.
    """
    from kfpc.components.preflight import core

    if "label" not in params:
        return None
    problems = core.check_parameters(**{k: params[k] for k in _PREFLIGHT_PARAMETERS if k in params})
    source = params.get("source_uri")
    if source is None and "source_pattern" in params:
        from kfpc.pipelines import spans

        try:
            source = spans.resolve_spans(params["source_pattern"]).latest_uri
        except spans.SpanError as err:
            raise core.PreflightError(problems + [f"source_pattern: {err}"]) from err
    return core.check(
        source, label=params["label"], task=params.get("task", "auto"), key_column=params.get("key_column", ""),
        exclude_columns=params.get("exclude_columns", []), numeric_columns=params.get("numeric_columns", []),
        parameter_problems=problems,
    )


def _read_task_outputs(task_dir: Path) -> tuple[dict, dict]:
    output_file = task_dir / "executor_output.json"
    if not output_file.exists():
        return {}, {}
    data = json.loads(output_file.read_text())
    params = data.get("parameterValues", {})
    artifacts = {}
    for name, entry in data.get("artifacts", {}).items():
        for artifact in entry.get("artifacts", []):
            uri = artifact.get("uri", "")
            artifacts[name] = {"path": uri, "metadata": artifact.get("metadata", {})}
    # outputs a component wrote without metadata still exist as files
    for child in task_dir.iterdir():
        if child.name not in artifacts and child.name != "executor_output.json":
            artifacts[child.name] = {"path": str(child), "metadata": {}}
    return params, artifacts


def model_name_for(source_uri: str) -> str:
    """The model (InferenceService) name for a table: its file name as a DNS-1035 label (``wa_churn.csv`` ->
    ``wa-churn``; ``bundled:penguins.csv`` -> ``penguins``); ``model`` when nothing of it is usable."""
    stem = re.split(r"[/:]", source_uri.rstrip("/"))[-1].split(".")[0].lower()
    name = re.sub(r"^[^a-z]+", "", re.sub(r"[^a-z0-9]+", "-", stem))[:63].strip("-")
    return name or "model"


def run(
    name: str,
    params: dict | None = None,
    output_dir: str | os.PathLike | None = None,
    verbose: bool = False,
    progress: TextIO | None = None,
) -> RunSummary:
    """Run pipeline ``name`` locally and return its summary (also written to ``<run_dir>/summary.json``).

    Args:
        name: a key of ``registry.PIPELINES``.
        params: pipeline parameters; unknown names raise ``ValueError`` before anything runs.
        output_dir: folder for this run (default ``runs/<name>-<timestamp>``); ``latest`` beside it points at it.
        verbose: stream kfp.local's full task logs; otherwise they go to ``<run_dir>/run.log``.
        progress: where to write one line per finished task (e.g. ``sys.stdout``); ``None``: nowhere.
    """
    import warnings

    import kfp.local

    # kfp.local warns that our family images are not plain Python images; running in this environment is
    # the point (the container contract test checks the images' environments separately).
    warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
    pipeline = registry.build(name, target="kfp")
    allowed = pipeline_parameters(pipeline)
    params = dict(params or {})
    for key in params:
        if key not in allowed:
            raise ValueError(f"unknown parameter {key!r}; {name} takes: {', '.join(sorted(allowed))}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(output_dir) if output_dir else Path("runs") / f"{name}-{stamp}"
    run_dir = run_dir.resolve()
    for key, value in registry.local_defaults(name).items():
        if key in allowed and key not in params:
            params[key] = value.format(run_dir=run_dir) if isinstance(value, str) else value
    if "model_name" in allowed and "model_name" not in params and params.get("source_uri"):
        # A model of another table than the bundled one is named after its file, not after the penguins.
        params["model_name"] = model_name_for(str(params["source_uri"]))
    root = run_dir / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)

    shown = _Progress(progress)
    timer = _TaskTimer(shown)
    logging.getLogger().addFilter(timer)
    log_path = run_dir / "run.log"
    start = time.time()
    status, error = "SUCCESS", ""
    with open(log_path, "w") as log, contextlib.ExitStack() as stack:
        if not verbose:
            # kfp.local logs through a handler on sys.stdout and prints the tasks' output there
            tee = _Tee(log, shown)
            stack.enter_context(contextlib.redirect_stdout(tee))
            stack.enter_context(contextlib.redirect_stderr(tee))
        original_print = builtins.print
        try:
            pipeline(**params)
        except Exception as exc:  # the summary records the failure; the caller decides the exit code
            status, error = "FAILURE", _ANSI.sub("", str(exc))
        finally:
            # kfp.local indents task output by swapping builtins.print; tasks of a dsl.ParallelFor run on
            # threads, and their swaps can restore each other's indenting version: put the real one back
            builtins.print = original_print
            logging.getLogger().removeFilter(timer)
            shown.clear()
    elapsed = time.time() - start

    run_roots = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    tasks: list[TaskSummary] = []
    if run_roots:
        run_root = run_roots[-1]
        names = list(dict.fromkeys(timer.order + sorted(p.name for p in run_root.iterdir() if p.is_dir())))
        for task_name in names:
            task = TaskSummary(name=task_name)
            if task_name in timer.finished:
                task.status, end = timer.finished[task_name]
                task.seconds = round(end - timer.started.get(task_name, end), 2)
            elif task_name in timer.started:
                task.status = "FAILURE" if status == "FAILURE" else "RUNNING"
            task_dir = run_root / task_name
            if task_dir.is_dir():
                task.outputs, task.artifacts = _read_task_outputs(task_dir)
            tasks.append(task)
    if status == "FAILURE" and not verbose:
        log_text = log_path.read_text(errors="replace")
        for task in tasks:
            if task.status == "FAILURE" and (cause := task_error(log_text, task.name)):
                error = f"{error}\n{task.name}: {cause}"
    resolved = {**pipeline_defaults(pipeline), **params}
    summary = RunSummary(name, str(run_dir), status, round(elapsed, 1), resolved, tasks, error,
                         versions=_versions(), images=_images(), reports=link_reports(run_dir, tasks))
    (run_dir / "summary.json").write_text(summary.to_json())
    # `latest` beside the run, wherever --output-dir put it (only a link of our own making is replaced)
    point_latest(run_dir)
    return summary


def _versions() -> dict:
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for dist in ("kfpc", "kfp", "tensorflow", "kserve", "pyarrow", "pandas", "ydf"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def _images() -> dict:
    from kfpc.components import images

    return {family: images.image(family) for family in images.FAMILIES}


def _report_kind(path: Path) -> str | None:
    """``html`` / ``md`` for a report file (told by its first bytes: KFP names artifact files by output)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512).lstrip().lower()
    except OSError:
        return None
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if head.startswith((b"#", b"|", b"**")):
        return "md"
    return None


def link_reports(run_dir: Path, tasks: list[TaskSummary]) -> dict:
    """Give each HTML/Markdown report of the run a name a browser or editor opens: ``reports/<task>-<output>.html``.

    KFP names an artifact file after the output (``html_report``, ``report``) with no extension, and the
    KFP UI reads it from exactly that URI, so the artifact itself keeps its name; the run folder gets
    hard links with the right extension beside it. Reports of tasks that failed after writing them count too.

    Returns:
        ``"<task>.<output>" -> path of the link``.
    """
    links = {}
    folder = run_dir / "reports"
    for task in tasks:
        for output, artifact in task.artifacts.items():
            path = Path(artifact["path"])
            kind = _report_kind(path) if path.is_file() else None
            if kind is None:
                continue
            folder.mkdir(exist_ok=True)
            link = folder / f"{task.name}-{output}.{kind}"
            if link.is_symlink() or link.exists():
                link.unlink()
            # a hard link (a copy across file systems), not a symlink: browsers take the type from the
            # resolved file's name, and would show a symlinked report as source
            try:
                os.link(path, link)
            except OSError:
                shutil.copyfile(path, link)
            links[f"{task.name}.{output}"] = str(link)
    return links


def point_latest(run_dir: Path) -> bool:
    """Make ``<parent>/latest`` a symlink to ``run_dir``, replacing only a symlink of our own making.

    A regular file or folder named ``latest``, or a symlink pointing anywhere but a sibling folder, is not
    ours: it is left alone (logged). Returns whether the link now points at ``run_dir``.
    """
    latest = run_dir.parent / "latest"
    if latest.exists() or latest.is_symlink():
        target = os.readlink(latest) if latest.is_symlink() else None
        if target is None or "/" in target or os.sep in target:
            logging.getLogger(__name__).warning("%s is not a run link of kfpc (a file, folder or foreign link): left unchanged", latest)
            return False
    # a temporary link renamed over the old one: never a moment without `latest`, never a deleted file
    scratch = run_dir.parent / f".latest-{os.getpid()}"
    if scratch.is_symlink():
        scratch.unlink()
    scratch.symlink_to(run_dir.name)
    os.replace(scratch, latest)
    return True


#: per artifact metadata / output parameter, the keys the summary shows (first found wins)
_HEADLINE_KEYS = (
    "rows", "anomaly_count", "warning_count", "validation_accuracy", "validation_rmse", "validation_r2", "accuracy",
    "roc_auc", "rmse", "r2", "mae", "blessed", "failed_thresholds", "endpoint_url", "model_uri", "previous_model_uri",
)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "/".join(f"{k}:{_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + "; ".join(_fmt(v) for v in value) + "]" if value else "[]"
    return str(value)


def headline(task: TaskSummary) -> dict:
    """The few outputs of a task worth a glance: metrics, verdicts, where the model went."""
    found = {}
    # verdicts (a blessing) before scalar Metrics, where a bool is stored as a number
    artifacts = sorted(task.artifacts.items(), key=lambda item: item[0] in ("metrics", "classification_metrics"))
    sources = [task.outputs] + [artifact["metadata"] for _, artifact in artifacts]
    for key in _HEADLINE_KEYS:
        for source in sources:
            if key in source and source[key] not in ("", None):
                found[key] = source[key]
                break
    return found


def gate_lines(summary: RunSummary) -> list[str]:
    """What stopped the model from being pushed, when something did: the failed thresholds, the push skipped."""
    lines = []
    for task in summary.tasks:
        for artifact in task.artifacts.values():
            if artifact["metadata"].get("blessed") is False:
                failed = artifact["metadata"].get("failed_thresholds") or []
                lines.append(f"{task.name}: the model was NOT blessed, so the push was skipped and nothing served "
                             "changed. Failed thresholds:")
                lines += [f"  - {reason}" for reason in failed] or ["  - (none recorded)"]
                lines.append("")
                break
    return lines


#: exit codes of ``kfpc run`` (and documented in ``kfpc --help``)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GATE = 0, 1, 2, 3

#: tasks whose failure means "a gate stopped the run", not "something broke"
GATE_TASKS = ("validation-gate",)


def exit_code(summary: RunSummary) -> int:
    """0: the run succeeded and pushed what it should; 3: a gate stopped it (anomalies in the data, or a
    model that was not blessed, so nothing was pushed); 1: a task failed for another reason."""
    if summary.status == "SUCCESS":
        return EXIT_GATE if gate_lines(summary) else EXIT_OK
    failed = [t.name for t in summary.tasks if t.status == "FAILURE"]
    if failed and all(name.startswith(GATE_TASKS) for name in failed):
        return EXIT_GATE
    return EXIT_FAILED


def format_summary(summary: RunSummary) -> str:
    """A human-readable table of the run: task, status, seconds, key metrics; then where things are."""
    lines = [f"pipeline {summary.pipeline}: {summary.status} in {summary.seconds:.1f} s", ""]
    width = max([len(t.name) for t in summary.tasks] + [4])
    lines.append(f"  {'task':<{width}}  {'status':<8} {'seconds':>8}  key outputs")
    for task in summary.tasks:
        secs = f"{task.seconds:8.1f}" if task.seconds is not None else f"{'-':>8}"
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in headline(task).items())
        lines.append(f"  {task.name:<{width}}  {task.status:<8} {secs}  {shown}")
    lines += [""] + gate_lines(summary)
    lines.append(f"run folder: {summary.run_dir} (task logs: run.log)")
    if summary.reports:
        lines.append("  reports (open in a browser / editor):")
        lines += [f"    {path}" for path in summary.reports.values()]
    for task in summary.tasks:
        for out_name, artifact in task.artifacts.items():
            if out_name in ("data", "statistics", "schema", "anomalies", "html_report", "model", "report", "manifest"):
                lines.append(f"  {task.name}.{out_name}: {artifact['path']}")
    if summary.error:
        lines += ["", f"error: {summary.error}"]
    return "\n".join(lines)
