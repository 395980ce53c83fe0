"""The container contract: run a compiled pipeline's tasks as the KFP launcher would.

Two ways to run a task: in the family *image* itself (:class:`BuildahContainers`: ``buildah run`` as UID
10001, artifacts on a volume mounted at ``/minio/kfpc``, the executor input naming ``minio://kfpc/...`` URIs
as the launcher writes them, and a check that the task wrote nothing in the image's filesystem), or, where no
image builder exists, in a family *environment* (below).

For every task of a compiled pipeline YAML this takes the executor's ``command`` and ``args`` verbatim,
builds the executor input (parameters, input artifacts from upstream outputs, local output paths) and
fills the placeholders with kfp's own local-execution code (``kfp.local.executor_input_utils`` and
``placeholder_utils``, the SDK's model of the launcher), then runs exactly that command with ``python3``
resolved from the *family environment* of the task's image: an environment holding only that family's
lock file and the kfpc wheel, as the image does. The task must exit 0 and write every declared output.

The DAG is walked in topological order; sub-DAGs (``dsl.If``/``dsl.Elif``/``dsl.Else`` groups, nested
pipelines) recurse, and their trigger conditions are evaluated on the resolved upstream values, so the
guarded tasks run or are skipped as on a cluster. ``dsl.ParallelFor`` and exit handlers are not modeled
(a clear error says so).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp import dsl
from kfp.local import executor_input_utils, executor_output_utils, placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2

from kfpc.components import images

#: where the artifact volume is mounted in a task's container, and the URI prefix the launcher writes for it
#: (kfp's executor maps ``minio://B/...`` to ``/minio/B/...``)
CONTAINER_ROOT = "/minio/kfpc"
CONTAINER_URI = "minio://kfpc"
#: the user every task runs as (the images' USER)
TASK_USER = "10001:0"

#: what a task's environment keeps from the caller's (locale and machine quirks only, never PYTHONPATH)
PASSTHROUGH_ENV = ("LANG", "LC_ALL", "TZ", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

#: artifact types whose content is their metadata (``log_metric``, ``log_confusion_matrix``)
#: artifact types that live in their metadata (log_metric; a Vertex resource's name), with no file behind them
METADATA_ONLY_TYPES = ("system.Metrics", "system.ClassificationMetrics", "system.SlicedClassificationMetrics",
                       "google.VertexModel", "google.VertexEndpoint")


class ContractError(RuntimeError):
    """A task broke the container contract; the message names the task, image and what went wrong."""


class UnsupportedPipelineError(ContractError):
    """The YAML uses a construct this harness does not model (e.g. ``dsl.ParallelFor``)."""


@dataclasses.dataclass
class TaskRun:
    """One task of a contract run."""

    name: str  #: task path, e.g. ``condition-1/push-kserve``
    kind: str  #: ``container`` | ``importer`` | ``dag``
    image: str = ""
    family: str = ""
    status: str = "PENDING"  #: ``SUCCEEDED`` | ``SKIPPED`` | ``FAILED``
    reason: str = ""
    seconds: float = 0.0
    command: list[str] = dataclasses.field(default_factory=list)
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    log_path: str = ""


def image_family(image: str) -> str:
    """The kfpc family of an image reference, whatever its registry.

    Args:
        image: e.g. ``registry.internal:5000/mirror/kfpc-tf:0.1.0``.
    Returns:
        e.g. ``tf``.
    Raises:
        ContractError: the image is not a kfpc family image (a task would run on an image we do not build).
    """
    repository = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    by_repository = {repo: family for family, repo in images.FAMILIES.items()}
    if repository not in by_repository:
        raise ContractError(f"image {image!r} is not a kfpc family image; known: {sorted(by_repository)}")
    return by_repository[repository]


def load_pipeline_spec(path: str | os.PathLike) -> pipeline_spec_pb2.PipelineSpec:
    """Read a compiled pipeline YAML (the first document; a kfp-kubernetes platform spec may follow)."""
    with open(path) as handle:
        documents = [d for d in yaml.safe_load_all(handle) if d]
    if not documents or "root" not in documents[0]:
        raise ContractError(f"{path}: not a compiled pipeline (no 'root' in the first YAML document)")
    return json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=True)


def evaluate_condition(condition: str, parameters: Mapping[str, Any]) -> bool:
    """Evaluate a KFP trigger condition (the CEL subset the compiler emits) on resolved input values.

    Args:
        condition: e.g. ``inputs.parameter_values['pipelinechannel--evaluate-blessed'] == true``.
        parameters: the task's resolved input parameters.
    Returns:
        Whether the guarded task runs.
    """
    missing: list[str] = []

    def lookup(match: re.Match) -> str:
        if match.group(2) not in parameters:
            missing.append(match.group(2))
        return f"_p[{match.group(2)!r}]"

    expression = re.sub(r"inputs\.parameter_values\[(['\"])(.+?)\1\]", lookup, condition)
    if missing:
        raise ContractError(f"condition {condition!r} refers to parameters {missing} that the task does not get")
    expression = expression.replace("&&", " and ").replace("||", " or ")
    expression = re.sub(r"!(?!=)", " not ", expression)
    expression = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", expression)))
    namespace = {"__builtins__": {}, "_p": dict(parameters), "int": int, "double": float, "string": str}
    try:
        return bool(eval(expression, namespace))  # noqa: S307 - the compiler's own expression, no user input
    except Exception as err:  # noqa: BLE001 - re-raised with the condition named
        raise ContractError(f"cannot evaluate condition {condition!r} (as {expression!r}): {err}") from err


EnvFactory = Callable[[str], Mapping[str, str]]


class ContractRunner:
    """Runs every task of one compiled pipeline in the family environments of the tasks' images.

    Args:
        pipeline_yaml: the compiled pipeline.
        work_dir: where task outputs and logs go (``<work_dir>/<pipeline>/<task>/...``).
        family_env: maps a family to the environment variables that make ``python3`` the family's
            interpreter (``PATH``) and the kfpc wheel importable (``PYTHONPATH``).
        timeout: seconds one task may take.
        extra_env: added to every task's environment (e.g. thread limits on a shared machine).
        containers: run each task inside its image (``work_dir`` is then the artifact volume) instead of
            in the family environment that ``family_env`` describes.
    """

    def __init__(
        self,
        pipeline_yaml: str | os.PathLike,
        work_dir: str | os.PathLike,
        family_env: EnvFactory,
        timeout: float = 900.0,
        extra_env: Mapping[str, str] | None = None,
        containers: BuildahContainers | None = None,
    ) -> None:
        self.containers = containers
        self.spec = load_pipeline_spec(pipeline_yaml)
        self.work_dir = Path(work_dir).resolve()
        self.family_env = family_env
        self.timeout = timeout
        self.extra_env = dict(extra_env or {})
        self.executors = json_format.MessageToDict(self.spec.deployment_spec)["executors"]
        self.pipeline_name = self.spec.pipeline_info.name
        self.pipeline_id = placeholder_utils.make_random_id()
        self.runs: list[TaskRun] = []

    # ---- public -------------------------------------------------------------------------------------

    def run(self, arguments: Mapping[str, Any] | None = None) -> list[TaskRun]:
        """Run the pipeline with ``arguments`` for its root parameters (defaults fill the rest).

        Returns:
            One :class:`TaskRun` per task, in execution order (skipped ones included).
        Raises:
            ContractError: a task failed or did not write a declared output; earlier runs are in ``self.runs``.
        """
        root_inputs = self.spec.root.input_definitions
        arguments = dict(arguments or {})
        unknown = sorted(set(arguments) - set(root_inputs.parameters) - set(root_inputs.artifacts))
        if unknown:
            raise ContractError(f"pipeline {self.pipeline_name!r} has no inputs {unknown}")
        values: dict[str, Any] = {}
        for name, parameter in root_inputs.parameters.items():
            if name in arguments:
                values[name] = arguments[name]
            elif parameter.HasField("default_value"):
                values[name] = executor_output_utils.pb2_value_to_python(parameter.default_value)
            elif not parameter.is_optional:
                raise ContractError(f"pipeline {self.pipeline_name!r}: required input {name!r} not given")
        self._run_dag(self.spec.root.dag, values, prefix="")
        return self.runs

    # ---- DAG ----------------------------------------------------------------------------------------

    def _run_dag(self, dag: pipeline_spec_pb2.DagSpec, inputs: dict[str, Any], prefix: str) -> dict[str, Any]:
        outputs: dict[str, dict[str, Any]] = {}
        skipped: set[str] = set()
        for task_name in topological_order(dag.tasks):
            task = dag.tasks[task_name]
            path = f"{prefix}{task_name}"
            component = self.spec.components[task.component_ref.name]
            kind = "dag" if component.HasField("dag") else "executor"
            upstream = set(task.dependent_tasks) | _data_dependencies(task)
            if upstream & skipped:
                self._skip(path, kind, f"upstream {sorted(upstream & skipped)} skipped")
                skipped.add(task_name)
                continue
            if task.HasField("iterator") or task.HasField("parameter_iterator") or task.HasField(
                "artifact_iterator"
            ):
                raise UnsupportedPipelineError(f"task {path!r}: dsl.ParallelFor is not modeled by the contract run")
            arguments = self._resolve_inputs(task, component, inputs, outputs, path)
            condition = task.trigger_policy.condition
            if condition and not evaluate_condition(condition, arguments):
                self._skip(path, kind, f"condition false: {condition}")
                skipped.add(task_name)
                continue
            if kind == "dag":
                outputs[task_name] = self._run_dag(component.dag, arguments, prefix=f"{path}/")
            else:
                outputs[task_name] = self._run_executor(task_name, path, component, arguments)
        return self._dag_outputs(dag, outputs, skipped)

    def _resolve_inputs(self, task, component, inputs, outputs, path) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for name, spec in task.inputs.parameters.items():
            which = spec.WhichOneof("kind")
            if which == "component_input_parameter":
                if spec.component_input_parameter in inputs:
                    arguments[name] = inputs[spec.component_input_parameter]
            elif which == "task_output_parameter":
                producer = spec.task_output_parameter.producer_task
                arguments[name] = outputs[producer][spec.task_output_parameter.output_parameter_key]
            elif which == "runtime_value":
                arguments[name] = executor_output_utils.pb2_value_to_python(spec.runtime_value.constant)
            else:
                raise UnsupportedPipelineError(f"task {path!r}: input parameter {name!r} of kind {which!r}")
        for name, spec in task.inputs.artifacts.items():
            which = spec.WhichOneof("kind")
            if which == "component_input_artifact":
                if spec.component_input_artifact in inputs:
                    arguments[name] = inputs[spec.component_input_artifact]
            elif which == "task_output_artifact":
                producer = spec.task_output_artifact.producer_task
                arguments[name] = outputs[producer][spec.task_output_artifact.output_artifact_key]
            else:
                raise UnsupportedPipelineError(f"task {path!r}: input artifact {name!r} of kind {which!r}")
        declared = set(component.input_definitions.parameters) | set(component.input_definitions.artifacts)
        for name in declared - set(arguments):
            parameter = component.input_definitions.parameters.get(name)
            artifact = component.input_definitions.artifacts.get(name)
            optional = (parameter and (parameter.is_optional or parameter.HasField("default_value"))) or (
                artifact and artifact.is_optional
            )
            if not optional:
                raise ContractError(f"task {path!r}: required input {name!r} has no value")
        return arguments

    @staticmethod
    def _dag_outputs(dag, outputs, skipped) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, spec in dag.outputs.parameters.items():
            if spec.HasField("value_from_parameter"):
                source = spec.value_from_parameter
                if source.producer_subtask not in skipped:
                    result[name] = outputs[source.producer_subtask][source.output_parameter_key]
            else:
                for selector in spec.value_from_oneof.parameter_selectors:  # dsl.OneOf: the branch that ran
                    if selector.producer_subtask in outputs:
                        result[name] = outputs[selector.producer_subtask][selector.output_parameter_key]
                        break
        for name, spec in dag.outputs.artifacts.items():
            for selector in spec.artifact_selectors:
                if selector.producer_subtask in outputs:
                    result[name] = outputs[selector.producer_subtask][selector.output_artifact_key]
                    break
        return result

    def _skip(self, path: str, kind: str, reason: str) -> None:
        self.runs.append(TaskRun(name=path, kind="dag" if kind == "dag" else "container", status="SKIPPED",
                                 reason=reason))

    # ---- one task -----------------------------------------------------------------------------------

    def _run_executor(self, task_name, path, component, arguments) -> dict[str, Any]:
        executor = self.executors[component.executor_label]
        if "importer" in executor:
            return self._run_importer(path, component, executor["importer"], arguments)
        if "container" not in executor:
            raise UnsupportedPipelineError(f"task {path!r}: executor kind {sorted(executor)} is not modeled")
        container = executor["container"]
        image = container["image"]
        run = TaskRun(name=path, kind="container", image=image, family=image_family(image))
        self.runs.append(run)
        task_root = self.work_dir / self.pipeline_name / path.replace("/", "__")
        task_root.mkdir(parents=True, exist_ok=False)
        executor_input = executor_input_utils.construct_executor_input(
            component_spec=component, arguments=arguments, task_root=str(task_root), block_input_artifact=False
        )
        if self.containers:
            task_root.chmod(0o777)
            executor_input_task = self.containers.to_container(executor_input, self.work_dir)
            pipeline_root = CONTAINER_URI
        else:
            executor_input_task, pipeline_root = executor_input, str(self.work_dir)
        executor_input_dict = executor_input_utils.executor_input_to_dict(executor_input_task, component)
        command = placeholder_utils.replace_placeholders(
            full_command=list(container.get("command", [])) + list(container.get("args", [])),
            executor_input_dict=executor_input_dict,
            pipeline_resource_name=self.pipeline_name,
            task_resource_name=task_name,
            pipeline_root=pipeline_root,
            unique_pipeline_id=self.pipeline_id,
        )
        run.command = command
        env = {} if self.containers else {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        if not self.containers:
            env.update({"HOME": str(task_root), "PYTHONNOUSERSITE": "1"})
        env.update(self.extra_env)
        env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
        if not self.containers:
            env.update(self.family_env(run.family))
        log_path = task_root / "task.log"
        run.log_path = str(log_path)
        where = f"the {run.family} image" if self.containers else f"the {run.family} environment"
        started = time.monotonic()
        try:
            with open(log_path, "w") as log:
                if self.containers:
                    result = self.containers.run(image, command, env, log, self.work_dir, self.timeout)
                else:
                    result = subprocess.run(command, env=env, cwd=task_root, stdout=log, stderr=subprocess.STDOUT,
                                            timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as err:
            run.status, run.reason = "FAILED", f"timed out after {self.timeout:.0f} s"
            raise ContractError(f"task {path!r} on {image} {run.reason}; log: {log_path}") from err
        finally:
            run.seconds = time.monotonic() - started
        if result.returncode != 0:
            run.status, run.reason = "FAILED", f"exit code {result.returncode}"
            tail = log_path.read_text()[-3000:]
            raise ContractError(f"task {path!r} failed in {where} ({image}), "
                                f"exit code {result.returncode}; log {log_path}:\n{tail}")
        if not os.path.exists(executor_input.outputs.output_file):
            run.status, run.reason = "FAILED", "no executor output file"
            raise ContractError(f"task {path!r}: exited 0 but wrote no {executor_input.outputs.output_file}")
        outputs = executor_output_utils.get_outputs_for_task(executor_input, component)
        if self.containers:
            outputs = self.containers.to_host(outputs, self.work_dir)
            written = self.containers.written_in_image(image)
            if written:
                run.status, run.reason = "FAILED", "wrote in the image's filesystem"
                raise ContractError(
                    f"task {path!r} wrote outside its artifact paths and /tmp, in the {run.family} image's "
                    f"filesystem (read-only on a cluster that sets readOnlyRootFilesystem): {written[:20]}")
        for name, spec in component.output_definitions.artifacts.items():
            artifact = outputs.get(name)
            written = isinstance(artifact, dsl.Artifact) and (
                os.path.exists(artifact.path)
                # Metrics types live in their metadata (log_metric); no file is expected.
                or (spec.artifact_type.schema_title in METADATA_ONLY_TYPES and artifact.metadata)
            )
            if not written:
                run.status, run.reason = "FAILED", f"output artifact {name!r} not written"
                raise ContractError(f"task {path!r}: output artifact {name!r} was not written "
                                    f"(expected {executor_input.outputs.artifacts[name].artifacts[0].uri})")
        for name in component.output_definitions.parameters:
            if name not in outputs:
                run.status, run.reason = "FAILED", f"output parameter {name!r} not written"
                raise ContractError(f"task {path!r}: output parameter {name!r} was not written")
        run.status, run.outputs = "SUCCEEDED", outputs
        return outputs

    def _run_importer(self, path, component, importer, arguments) -> dict[str, Any]:
        # The importer runs inside the KFP driver, not in any image: model its output only.
        uri_spec = importer.get("artifactUri", {})
        if "constant" in uri_spec:
            uri = uri_spec["constant"]
        else:
            uri = arguments[uri_spec["runtimeParameter"]]
        schema = importer.get("typeSchema", {})
        artifact = dsl.Artifact(name="artifact", uri=uri, metadata=importer.get("metadata", {}))
        artifact.schema_title = schema.get("schemaTitle", "system.Artifact")
        artifact.schema_version = schema.get("schemaVersion", "0.0.1")
        (name,) = component.output_definitions.artifacts
        run = TaskRun(name=path, kind="importer", status="SUCCEEDED", outputs={name: artifact})
        self.runs.append(run)
        return {name: artifact}


class BuildahContainers:
    """Runs tasks inside the family images with buildah, as UID 10001, artifacts on a volume.

    One working container per image, reused by every task on that image (vfs copies an image in full for
    each container; a pod would get a fresh one, which the check below stands in for). Each task gets the
    artifact volume at ``CONTAINER_ROOT``, its own empty ``/tmp`` (an emptyDir), the host network, and the
    image's own environment, entrypoint-less ``command``/``args`` exactly as compiled. After the task, the
    container's filesystem is searched for anything the task wrote: a task must write only under its
    artifact paths and ``/tmp`` (buildah cannot mount the root read-only; this finds the same writes).

    Args:
        local_images: family image reference (as in the YAML) -> local tag to run; references not in it
            run as named.
        volume_owner: ``uid:gid`` given to the folders the runner creates on the volume.
    """

    def __init__(self, local_images: Mapping[str, str] | None = None, user: str = TASK_USER) -> None:
        self.local_images = dict(local_images or {})
        self.user = user
        self._containers: dict[str, tuple[str, Path]] = {}
        self._marker: dict[str, float] = {}
        self._noise: dict[str, set[str]] = {}
        self._scratch = Path(tempfile.mkdtemp(prefix="kfpc-task-tmp-"))

    # ---- paths and URIs ---------------------------------------------------------------------------------

    @staticmethod
    def to_container(executor_input, volume: Path):
        """A copy of ``executor_input`` with the volume's host paths as the launcher's ``minio://`` URIs and
        the output files at their paths inside the container."""
        copy = type(executor_input)()
        copy.CopyFrom(executor_input)
        host = str(volume)

        def uri(value: str) -> str:
            return CONTAINER_URI + value[len(host):] if value.startswith(host + "/") else value

        def path(value: str) -> str:
            return CONTAINER_ROOT + value[len(host):] if value.startswith(host + "/") else value

        for artifacts in list(copy.inputs.artifacts.values()) + list(copy.outputs.artifacts.values()):
            for artifact in artifacts.artifacts:
                artifact.uri = uri(artifact.uri)
        for parameter in copy.outputs.parameters.values():
            parameter.output_file = path(parameter.output_file)
        copy.outputs.output_file = path(copy.outputs.output_file)
        return copy

    @staticmethod
    def to_host(outputs: dict[str, Any], volume: Path) -> dict[str, Any]:
        """The task's outputs with their ``minio://kfpc`` URIs as host paths on the volume."""
        for value in outputs.values():
            for artifact in value if isinstance(value, list) else [value]:
                if isinstance(artifact, dsl.Artifact) and artifact.uri.startswith(CONTAINER_URI + "/"):
                    artifact.uri = str(volume) + artifact.uri[len(CONTAINER_URI):]
        return outputs

    @staticmethod
    def container_path(host_path: str | os.PathLike, volume: Path) -> str:
        """Where a file on the volume is seen inside a task's container."""
        relative = Path(host_path).resolve().relative_to(Path(volume).resolve())
        return f"{CONTAINER_ROOT}/{relative}"

    # ---- containers ---------------------------------------------------------------------------------

    def _buildah(self, *args: str) -> list[str]:
        return ["buildah", "--storage-driver", os.environ.get("KFPC_BUILDAH_DRIVER", "vfs"), *args]

    def container(self, image: str) -> tuple[str, Path]:
        """The working container of ``image`` (created on first use) and its root filesystem on the host."""
        if image not in self._containers:
            local = self.local_images.get(image, image)
            made = subprocess.run(self._buildah("from", "--pull-never", local), capture_output=True, text=True)
            if made.returncode != 0:
                raise ContractError(f"cannot start a container of {local} (for {image}): {made.stderr.strip()}")
            name = made.stdout.strip().splitlines()[-1]
            root = subprocess.run(self._buildah("mount", name), capture_output=True, text=True, check=True)
            self._containers[image] = (name, Path(root.stdout.strip()))
        return self._containers[image]

    def run(self, image: str, command: list[str], env: Mapping[str, str], log, volume: Path,
            timeout: float) -> subprocess.CompletedProcess:
        """Run ``command`` in ``image``'s container as the task user; stdout and stderr go to ``log``."""
        name, root = self.container(image)
        tmp = Path(tempfile.mkdtemp(dir=self._scratch))
        tmp.chmod(0o1777)
        options = ["--isolation", "chroot", "--user", self.user, "-v", f"{volume}:{CONTAINER_ROOT}",
                   "-v", f"{tmp}:/tmp"]
        for key, value in env.items():
            options += ["--env", f"{key}={value}"]
        if image not in self._marker:
            # Mount points and the files buildah itself provides (/etc/hosts, /run/.containerenv) appear on the
            # first run, and some are touched on every run: two no-op runs first, and what the second one
            # touches is buildah's own doing, left out of what the search reports for a task.
            subprocess.run(self._buildah("run", *options, name, "--", "true"), capture_output=True, check=True)
            self._marker[image] = time.time()
            time.sleep(0.01)
            subprocess.run(self._buildah("run", *options, name, "--", "true"), capture_output=True, check=True)
            self._noise[image] = set(self.written_in_image(image))
        self._marker[image] = time.time()
        time.sleep(0.01)  # mtimes of the task's files fall strictly after the marker
        return subprocess.run(self._buildah("run", *options, name, "--", *command), stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)

    def written_in_image(self, image: str) -> list[str]:
        """Paths in ``image``'s container filesystem modified since the last task began (mount points aside)."""
        _, root = self._containers[image]
        since = self._marker[image]
        found = []
        skip = {root / "proc", root / "sys", root / "dev", root / "tmp", root / CONTAINER_ROOT.lstrip("/")}
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
            for name in dirs + files:
                full = os.path.join(folder, name)
                try:
                    if os.lstat(full).st_mtime > since:
                        found.append("/" + os.path.relpath(full, root))
                except FileNotFoundError:
                    continue
        return sorted(set(found) - self._noise.get(image, set()))

    def close(self) -> None:
        """Remove every working container this object made."""
        for name, _ in self._containers.values():
            subprocess.run(self._buildah("rm", name), capture_output=True)
        self._containers.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)


def image_entrypoint(local_image: str) -> list[str]:
    """The ENTRYPOINT + CMD of a local image (``buildah run`` does not apply them by itself)."""
    driver = os.environ.get("KFPC_BUILDAH_DRIVER", "vfs")
    shown = subprocess.run(["buildah", "--storage-driver", driver, "inspect", "--type", "image", local_image],
                           capture_output=True, text=True, check=True)
    config = json.loads(shown.stdout)["OCIv1"]["config"]
    return list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])


def topological_order(tasks: Mapping[str, pipeline_spec_pb2.PipelineTaskSpec]) -> list[str]:
    """Task names so that every task comes after the tasks it depends on (ties broken by name).

    Raises:
        ContractError: the tasks form a cycle or depend on a task that does not exist.
    """
    waiting = {name: (set(task.dependent_tasks) | _data_dependencies(task)) for name, task in tasks.items()}
    for name, upstream in waiting.items():
        if upstream - set(tasks):
            raise ContractError(f"task {name!r} depends on unknown tasks {sorted(upstream - set(tasks))}")
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, upstream in waiting.items() if not upstream - set(order))
        if not ready:
            raise ContractError(f"tasks {sorted(waiting)} form a dependency cycle")
        order.append(ready[0])
        del waiting[ready[0]]
    return order


def _data_dependencies(task: pipeline_spec_pb2.PipelineTaskSpec) -> set[str]:
    producers = {s.task_output_parameter.producer_task for s in task.inputs.parameters.values()
                 if s.HasField("task_output_parameter")}
    producers |= {s.task_output_artifact.producer_task for s in task.inputs.artifacts.values()
                  if s.HasField("task_output_artifact")}
    return producers


def family_environment(venv: str | os.PathLike, kfpc_site: str | os.PathLike) -> dict[str, str]:
    """Environment variables that make a task see exactly the family environment plus the kfpc wheel.

    Args:
        venv: a family environment (see ``build.family_venv``).
        kfpc_site: the folder the kfpc wheel was installed into (see ``build.install_wheel``).
    """
    return {
        "PATH": f"{Path(venv) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "PYTHONPATH": str(kfpc_site),
    }


def main(argv: list[str] | None = None) -> int:
    """``python .ci/images/contract.py PIPELINE.yaml WORK_DIR [--param k=v ...] [--in-images]``."""
    import argparse
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import build  # the sibling build tooling

    parser = argparse.ArgumentParser(description="run a compiled pipeline's tasks in per-family environments")
    parser.add_argument("pipeline_yaml")
    parser.add_argument("work_dir")
    parser.add_argument("--param", action="append", default=[], help="key=value (JSON values parse)")
    parser.add_argument("--in-images", action="store_true",
                        help="run each task in its (already built) image with buildah instead of a family venv")
    args = parser.parse_args(argv)
    params = {}
    for pair in args.param:
        key, _, value = pair.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    wheel_dir = tempfile.mkdtemp(prefix="kfpc-wheel-")
    wheel = build.build_wheel(wheel_dir)
    sites: dict[str, dict[str, str]] = {}

    def env_for(family: str) -> dict[str, str]:
        if family not in sites:
            venv = build.family_venv(build.venv_family(family))
            site = build.install_wheel(venv, wheel, Path(wheel_dir) / f"site-{family}")
            sites[family] = family_environment(venv, site)
        return sites[family]

    containers = BuildahContainers() if args.in_images else None
    runner = ContractRunner(args.pipeline_yaml, args.work_dir, env_for, containers=containers)
    try:
        runner.run(params)
    except ContractError as err:
        print(err, file=sys.stderr)
        return 1
    finally:
        if containers:
            containers.close()
        for run in runner.runs:
            print(f"{run.status:9} {run.seconds:6.1f}s {run.family or '-':7} {run.name} {run.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
