"""Requests to Kubeflow Pipelines and Vertex AI, built once and either printed (dry-run) or sent.

Every request is built from the client libraries' own request objects: ``kfp_server_api`` models
(``V2beta1Run``, ``V2beta1RecurringRun`` ...) serialized by ``kfp_server_api.ApiClient``, and the
``google.cloud.aiplatform`` request protos (``CreatePipelineJobRequest``, ``CreateScheduleRequest`` ...).
A dry-run and a real call share the builder, so what ``--dry-run`` prints is what would be sent.

For KFP, the dry-run pushes the request through the generated ``kfp_server_api`` service classes with a
transport that records the HTTP request (method, URL with query, headers, JSON body) instead of sending
it; ``kfp.Client`` is never constructed, since its constructor already calls the server.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
import types
from pathlib import Path

import yaml

from kfpc.components._recording import RecordingPool

#: KFP's in-cluster address (what ``kfp.Client()`` uses inside a pod without ``host``).
KFP_IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
#: where Kubeflow projects a KFP-audience service-account token into pods (``PodDefault`` / poddefaults)
KFP_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
KFP_MAX_CONCURRENCY = 10  # the KFP API server rejects max_concurrency outside 1-10
KFP_RUN_TERMINAL_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_VERTEX_JOB_ID = re.compile(r"^[a-z][a-z0-9-]{0,127}$")
_NETWORK = re.compile(r"^projects/[^/]+/global/networks/[^/]+$")
_SERVICE_ACCOUNT = re.compile(r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$|^[^@\s]+@[^@\s]+$")


class SubmitError(ValueError):
    """Bad input to submit or schedule: names the option or file and the value."""


# --------------------------------------------------------------------------- pipeline packages


@dataclasses.dataclass(frozen=True)
class PipelinePackage:
    """A compiled pipeline YAML: the ``PipelineSpec`` document and the optional platform document.

    Attributes:
        path: the file.
        pipeline_spec: the first YAML document (``PipelineSpec`` as a dict).
        platform_spec: the merged later documents (``PlatformSpec``, e.g. kfp-kubernetes node selectors).
    """

    path: Path
    pipeline_spec: dict
    platform_spec: dict

    @property
    def name(self) -> str:
        """The pipeline name (``pipelineInfo.name``)."""
        return self.pipeline_spec.get("pipelineInfo", {}).get("name", self.path.stem)

    @property
    def parameters(self) -> dict[str, dict]:
        """Input parameters: name -> ``{"parameterType", "defaultValue"?, "isOptional"?}``."""
        return dict(self.pipeline_spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


def load_package(path: str | os.PathLike) -> PipelinePackage:
    """Read a compiled pipeline YAML (one or two documents) and check it is a KFP v2 ``PipelineSpec``.

    Args:
        path: the ``.yaml``/``.yml`` file written by ``kfpc compile`` or ``kfp.compiler.Compiler``.
    Returns:
        The :class:`PipelinePackage`.
    Raises:
        SubmitError: missing file, not YAML, or not a pipeline spec.
    """
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    path = Path(path)
    if not path.is_file():
        raise SubmitError(f"--package {path}: no such file")
    if path.suffix not in (".yaml", ".yml"):
        raise SubmitError(f"--package {path}: expected a compiled pipeline .yaml/.yml file")
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as err:
        raise SubmitError(f"--package {path}: not valid YAML: {err}") from None
    if not docs or not isinstance(docs[0], dict) or "root" not in docs[0] or "pipelineInfo" not in docs[0]:
        raise SubmitError(f"--package {path}: not a compiled KFP v2 pipeline (no 'pipelineInfo'/'root')")
    platform: dict = {}
    for doc in docs[1:]:
        platform.update(doc)
    try:  # the server parses it the same way; fail here, with the file name, instead of there
        json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
        json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    except json_format.ParseError as err:
        raise SubmitError(f"--package {path}: not a valid KFP PipelineSpec: {err}") from None
    return PipelinePackage(path, docs[0], platform)


def resolve_package(package: str | None, pipeline: str | None, target: str, workdir: str | os.PathLike) -> Path:
    """The YAML file to submit: ``--package`` as given, or ``--pipeline NAME`` compiled for ``target``.

    Args:
        package: path of a compiled YAML, or None.
        pipeline: a name in ``kfpc.pipelines.registry.PIPELINES``, or None.
        target: ``kfp`` or ``vertex`` (placement differs between the two).
        workdir: folder for the compiled file.
    Returns:
        Path of the YAML.
    """
    if bool(package) == bool(pipeline):
        raise SubmitError("give exactly one of --package FILE or --pipeline NAME")
    if package:
        return Path(package)
    from kfpc.pipelines import compiler, registry

    if pipeline not in registry.PIPELINES:
        raise SubmitError(f"--pipeline {pipeline!r}: unknown; known: {', '.join(sorted(registry.PIPELINES))}")
    return compiler.compile_pipeline(pipeline, target=target, output_path=Path(workdir) / f"{pipeline}.yaml")


_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _coerce(name: str, value, kind: str | None, origin: str):
    """Turn a parameter value into the type the pipeline declares (``STRING``, ``NUMBER_INTEGER`` ...)."""
    text = value if isinstance(value, str) else None
    try:
        if kind == "STRING":
            if isinstance(value, (dict, list)):
                return json.dumps(value)
            return str(value) if not isinstance(value, bool) else str(value).lower()
        if kind == "NUMBER_INTEGER":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(text.strip()) if text is not None else int(value)
        if kind == "NUMBER_DOUBLE":
            if isinstance(value, bool):
                raise ValueError
            return float(text) if text is not None else float(value)
        if kind == "BOOLEAN":
            if isinstance(value, bool):
                return value
            if text is not None and text.strip().lower() in _BOOL_TEXT:
                return _BOOL_TEXT[text.strip().lower()]
            raise ValueError
        if kind in ("LIST", "STRUCT"):
            parsed = json.loads(text) if text is not None else value
            if not isinstance(parsed, list if kind == "LIST" else dict):
                raise ValueError
            return parsed
    except (ValueError, TypeError, json.JSONDecodeError):
        want = {"NUMBER_INTEGER": "an integer", "NUMBER_DOUBLE": "a number", "BOOLEAN": "true or false",
                "LIST": "a JSON list", "STRUCT": "a JSON object"}.get(kind, kind)
        raise SubmitError(f"{origin}: parameter {name!r} expects {want}, got {value!r}") from None
    if text is not None:  # no declared type: JSON if it parses, else text
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return value


def parse_params(pairs: list[str] | None, params_file: str | None, package: PipelinePackage) -> dict:
    """Pipeline parameters from ``--params-file`` (JSON or YAML mapping) then ``--param k=v`` (wins).

    Values are converted to the types the compiled pipeline declares; unknown names and missing required
    parameters are errors, so a typo fails here rather than as a failed run an hour later.

    Args:
        pairs: ``["key=value", ...]``.
        params_file: path of a JSON/YAML mapping, or None.
        package: the pipeline the parameters are for.
    Returns:
        name -> typed value.
    """
    declared = package.parameters
    raw: dict[str, tuple[object, str]] = {}
    if params_file:
        path = Path(params_file)
        if not path.is_file():
            raise SubmitError(f"--params-file {path}: no such file")
        try:
            loaded = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
        except yaml.YAMLError as err:
            raise SubmitError(f"--params-file {path}: not JSON or YAML: {err}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise SubmitError(f"--params-file {path}: expected a mapping of parameter name to value")
        raw.update({str(k): (v, f"--params-file {path}") for k, v in loaded.items()})
    for pair in pairs or []:
        if "=" not in pair:
            raise SubmitError(f"--param {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        raw[key.strip()] = (value, f"--param {pair!r}")
    params = {}
    for name, (value, origin) in raw.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "(none)"
            raise SubmitError(f"{origin}: pipeline {package.name!r} has no parameter {name!r}; it takes: {known}")
        params[name] = _coerce(name, value, declared[name].get("parameterType"), origin)
    missing = [n for n, d in declared.items() if n not in params and "defaultValue" not in d and not d.get("isOptional")]
    if missing:
        raise SubmitError(
            f"pipeline {package.name!r} ({package.path}) needs parameter(s) {', '.join(sorted(missing))}: "
            f"pass --param NAME=VALUE or --params-file"
        )
    return params


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """Vertex AI labels from ``k=v`` items (each may hold several, comma-separated), checked like the API does."""
    labels: dict[str, str] = {}
    for item in items or []:
        for pair in filter(None, (p.strip() for p in item.split(","))):
            if "=" not in pair:
                raise SubmitError(f"--labels {pair!r}: expected key=value")
            key, value = (s.strip() for s in pair.split("=", 1))
            if not _LABEL_KEY.match(key):
                raise SubmitError(
                    f"--labels key {key!r}: must start with a lowercase letter and hold at most 63 lowercase "
                    f"letters, digits, '_' or '-'"
                )
            if not _LABEL_VALUE.match(value):
                raise SubmitError(f"--labels {key}={value!r}: values hold at most 63 lowercase letters, digits, _ or -")
            labels[key] = value
    if len(labels) > 64:
        raise SubmitError(f"--labels: at most 64 labels, got {len(labels)}")
    return labels


def parse_time(text: str | None, option: str) -> dt.datetime | None:
    """An RFC 3339 time (``2025-01-31T02:00:00Z``; no zone means UTC) as an aware datetime."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SubmitError(f"{option} {text!r}: expected an RFC 3339 time such as 2025-01-31T02:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- Kubeflow Pipelines


def kfp_pipeline_spec(package: PipelinePackage, enable_caching: bool | None) -> dict:
    """The ``pipeline_spec`` field of a KFP run, as ``kfp.Client`` sends it.

    The spec is round-tripped through the ``PipelineSpec`` proto (as the client does); with a platform
    document (kfp-kubernetes), both go as ``{"pipeline_spec": ..., "platform_spec": ...}``. A caching
    choice made at submission overrides the compile-time setting of every top-level task.
    """
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = json_format.ParseDict(package.pipeline_spec, pipeline_spec_pb2.PipelineSpec())
    if enable_caching is not None:
        for task in spec.root.dag.tasks.values():
            task.caching_options.enable_cache = enable_caching
    platform = json_format.ParseDict(package.platform_spec, pipeline_spec_pb2.PlatformSpec())
    if platform == pipeline_spec_pb2.PlatformSpec():
        return json_format.MessageToDict(spec)
    return {"pipeline_spec": json_format.MessageToDict(spec), "platform_spec": json_format.MessageToDict(platform)}


def kfp_run_body(
    package: PipelinePackage,
    params: dict,
    run_name: str,
    experiment_id: str | None = None,
    pipeline_root: str | None = None,
    enable_caching: bool | None = None,
    service_account: str | None = None,
    description: str | None = None,
):
    """The ``V2beta1Run`` to create.

    Args:
        package: the compiled pipeline.
        params: typed parameters (see :func:`parse_params`).
        run_name: the run's display name.
        experiment_id: the experiment (resolved from its name at submission).
        pipeline_root: where artifacts go (default: the KFP deployment's).
        enable_caching: override every task's caching; None keeps the compiled settings.
        service_account: Kubernetes service account of the run's pods.
        description: free text shown in the UI.
    Returns:
        ``kfp_server_api.V2beta1Run``.
    """
    import kfp_server_api

    if not run_name or run_name.isspace():
        raise SubmitError("--run-name must not be empty")
    return kfp_server_api.V2beta1Run(
        experiment_id=experiment_id,
        display_name=run_name,
        description=description,
        pipeline_spec=kfp_pipeline_spec(package, enable_caching),
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=params, pipeline_root=pipeline_root),
        service_account=service_account,
    )


def kfp_trigger(
    cron_spec=None, interval_seconds: int | None = None, start_time: dt.datetime | None = None,
    end_time: dt.datetime | None = None,
):
    """The ``V2beta1Trigger`` of a recurring run: a checked cron (``kfpc.pipelines.cron``) or an interval."""
    import kfp_server_api

    if (cron_spec is None) == (interval_seconds is None):
        raise SubmitError("give exactly one of --cron or --interval")
    if start_time and end_time and end_time <= start_time:
        raise SubmitError(f"--end-time {end_time.isoformat()} is not after --start-time {start_time.isoformat()}")
    if cron_spec is not None:
        if cron_spec.target != "kfp":
            raise SubmitError(f"cron {cron_spec.expression!r} was checked for {cron_spec.target}, not kfp")
        return kfp_server_api.V2beta1Trigger(cron_schedule=kfp_server_api.V2beta1CronSchedule(
            cron=cron_spec.expression, start_time=start_time, end_time=end_time))
    return kfp_server_api.V2beta1Trigger(periodic_schedule=kfp_server_api.V2beta1PeriodicSchedule(
        interval_second=interval_seconds, start_time=start_time, end_time=end_time))


def kfp_recurring_run_body(
    package: PipelinePackage,
    params: dict,
    name: str,
    trigger,
    experiment_id: str | None = None,
    max_concurrency: int = 1,
    catchup: bool = False,
    enabled: bool = True,
    pipeline_root: str | None = None,
    enable_caching: bool | None = None,
    service_account: str | None = None,
    description: str | None = None,
):
    """The ``V2beta1RecurringRun`` to create.

    Args:
        package, params, pipeline_root, enable_caching, service_account, description: as for a run.
        name: the recurring run's display name (each run is named after it).
        trigger: from :func:`kfp_trigger`.
        experiment_id: the experiment the runs go to.
        max_concurrency: runs allowed at once (KFP accepts 1-10).
        catchup: after a pause, start every missed run (True) or only the latest (False, the default:
            retraining on the newest data needs one run, not a backlog).
        enabled: create it enabled, or paused.
    Returns:
        ``kfp_server_api.V2beta1RecurringRun``.
    """
    import kfp_server_api

    if not name or name.isspace():
        raise SubmitError("--name must not be empty")
    if not 1 <= max_concurrency <= KFP_MAX_CONCURRENCY:
        raise SubmitError(f"--max-concurrency {max_concurrency}: KFP accepts 1-{KFP_MAX_CONCURRENCY}")
    return kfp_server_api.V2beta1RecurringRun(
        experiment_id=experiment_id,
        display_name=name,
        description=description,
        mode=kfp_server_api.RecurringRunMode.ENABLE if enabled else kfp_server_api.RecurringRunMode.DISABLE,
        pipeline_spec=kfp_pipeline_spec(package, enable_caching),
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=params, pipeline_root=pipeline_root),
        trigger=trigger,
        max_concurrency=max_concurrency,
        no_catchup=not catchup,
        service_account=service_account,
    )


@dataclasses.dataclass
class RecordedRequest:
    """One HTTP request as ``kfp_server_api`` would put it on the wire."""

    method: str
    url: str
    headers: dict
    body: object = None

    def to_dict(self) -> dict:
        """JSON-ready form; the bearer token is redacted."""
        headers = dict(self.headers)
        if "authorization" in {k.lower() for k in headers}:
            headers = {k: ("Bearer <redacted>" if k.lower() == "authorization" else v) for k, v in headers.items()}
        out = {"method": self.method, "url": self.url, "headers": headers}
        if self.body is not None:
            out["body"] = self.body
        return out


class _Recorded(Exception):
    """Stops a dry-run call once its request has been recorded."""


class _RecordingPoolManager(RecordingPool):
    """Records the request and stops before any socket is opened."""

    def __init__(self, log: list[RecordedRequest]):
        self.log = log

    def answer(self, method, url, headers, payload):
        self.log.append(RecordedRequest(method, url, headers, payload))
        raise _Recorded()


def kfp_dry_run_apis(host: str | None, token: str | None = None):
    """``kfp_server_api`` services whose calls are recorded instead of sent.

    Args:
        host: the KFP endpoint (default: the in-cluster address).
        token: a bearer token, to show that the Authorization header is set (printed redacted).
    Returns:
        ``(apis, log)``: ``apis.runs``/``apis.recurring_runs``/``apis.experiments`` have the same methods as
        ``kfp.Client().runs`` etc.; each call appends a :class:`RecordedRequest` to ``log`` and returns None.
    """
    import kfp_server_api

    config = kfp_server_api.Configuration(host=normalize_host(host))
    if token:
        config.api_key["authorization"] = token
        config.api_key_prefix["authorization"] = "Bearer"
    api_client = kfp_server_api.ApiClient(config)
    log: list[RecordedRequest] = []
    _RecordingPoolManager(log).install(api_client)

    def recording(service):
        class _Service:
            def __getattr__(self, name):
                method = getattr(service, name)

                def call(*args, **kwargs):
                    try:
                        method(*args, **kwargs)
                    except _Recorded:
                        return None
                    raise AssertionError(f"{name} returned without sending a request")

                return call

        return _Service()

    apis = types.SimpleNamespace(
        pipelines=recording(kfp_server_api.PipelineServiceApi(api_client)),
        uploads=recording(kfp_server_api.PipelineUploadServiceApi(api_client)),
        runs=recording(kfp_server_api.RunServiceApi(api_client)),
        recurring_runs=recording(kfp_server_api.RecurringRunServiceApi(api_client)),
        experiments=recording(kfp_server_api.ExperimentServiceApi(api_client)),
    )
    return apis, log


def normalize_host(host: str | None) -> str:
    """The KFP endpoint as ``kfp.Client`` would use it (scheme added, trailing slash dropped)."""
    if not host:
        return KFP_IN_CLUSTER_HOST
    if not host.startswith(("http://", "https://")):
        host = "https://" + host
    return host.rstrip("/")


#: how ``kfp_client`` authenticates (``--credentials``)
CREDENTIALS = ("auto", "token", "service-account", "cookies", "iap", "kube", "none")


def kfp_client(
    host: str | None, namespace: str | None = None, token: str | None = None, kube_context: str | None = None,
    ssl_ca_cert: str | None = None, verify_ssl: bool | None = None, credentials: str = "auto",
    cookies: str | None = None, iap_client_id: str | None = None,
):
    """A connected ``kfp.Client`` with the right credentials: every real KFP call goes through it.

    ``credentials`` picks the method; ``auto`` (default) takes the first found of: ``token`` (``--token`` or
    ``KFPC_KFP_TOKEN``); a Kubeflow-projected service-account token (``KF_PIPELINES_SA_TOKEN_PATH``, default
    ``/var/run/secrets/kubeflow/pipelines/token``) - the multi-user in-cluster case; otherwise kfp's own
    discovery (in-cluster service DNS, or the kube config's context through the API-server proxy when no host
    is given). The others force one method and fail when it has nothing to work with:

    - ``token``: a bearer token (``--token``/``KFPC_KFP_TOKEN``), e.g. from ``kubectl create token``;
    - ``service-account``: the projected token file (a pod of the cluster);
    - ``cookies``: a Dex / oauth2-proxy session (``--cookies 'authservice_session=...'``, copied from a
      browser logged in to the Kubeflow UI);
    - ``iap``: a deployment behind Google Cloud IAP (``--iap-client-id``; kfp fetches the ID token with the
      application-default credentials);
    - ``kube``: the kube config's context (``--kube-context``), through the API-server proxy;
    - ``none``: no credentials (a port-forwarded single-user deployment).
    """
    import kfp
    from kfp.client import set_volume_credentials

    if credentials not in CREDENTIALS:
        raise SubmitError(f"--credentials {credentials!r}: expected one of {', '.join(CREDENTIALS)}")
    kwargs: dict = {"host": host, "ssl_ca_cert": ssl_ca_cert, "verify_ssl": verify_ssl}
    if namespace:
        kwargs["namespace"] = namespace
    token = token or os.environ.get("KFPC_KFP_TOKEN")
    token_path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", KFP_SA_TOKEN_PATH)
    if credentials == "auto":
        credentials = "token" if token else "service-account" if Path(token_path).is_file() else "kube"
    if credentials == "token":
        if not token:
            raise SubmitError("--credentials token: give --token or set KFPC_KFP_TOKEN")
        kwargs["existing_token"] = token
    elif credentials == "service-account":
        if not Path(token_path).is_file():
            raise SubmitError(f"--credentials service-account: no token file at {token_path} "
                              "(set KF_PIPELINES_SA_TOKEN_PATH, or run in a pod with the projected token)")
        kwargs["credentials"] = set_volume_credentials.ServiceAccountTokenVolumeCredentials(path=token_path)
    elif credentials == "cookies":
        if not cookies:
            raise SubmitError("--credentials cookies: give --cookies 'authservice_session=...'")
        kwargs["cookies"] = cookies
    elif credentials == "iap":
        if not iap_client_id:
            raise SubmitError("--credentials iap: give --iap-client-id (the OAuth client of the IAP)")
        kwargs["client_id"] = iap_client_id
    elif credentials == "kube":
        kwargs["kube_context"] = kube_context
    return kfp.Client(**kwargs)


def kfp_client_from_args(args) -> object:
    """:func:`kfp_client` from a command's parsed ``add_target_arguments`` options."""
    return kfp_client(args.host, args.namespace, args.token, args.kube_context, args.ssl_ca_cert,
                      credentials=getattr(args, "credentials", "auto"), cookies=getattr(args, "cookies", None),
                      iap_client_id=getattr(args, "iap_client_id", None))


def kfp_run_url(host: str | None, run_id: str) -> str:
    """The KFP UI link of a run."""
    from kfpc.components._redact import redact

    return redact(f"{normalize_host(host)}/#/runs/details/{run_id}")


def kfp_pipeline_url(host: str | None, pipeline_id: str) -> str:
    """The KFP UI link of a pipeline."""
    from kfpc.components._redact import redact

    return redact(f"{normalize_host(host)}/#/pipelines/details/{pipeline_id}")


def kfp_recurring_run_url(host: str | None, recurring_run_id: str) -> str:
    """The KFP UI link of a recurring run."""
    from kfpc.components._redact import redact

    return redact(f"{normalize_host(host)}/#/recurringrun/details/{recurring_run_id}")


# --------------------------------------------------------------------------- Vertex AI


def vertex_endpoint(region: str) -> str:
    """The regional Vertex AI API endpoint the SDK calls."""
    return f"{region}-aiplatform.googleapis.com"


def vertex_parent(project: str, region: str) -> str:
    """``projects/<project>/locations/<region>``."""
    if not project or not region:
        raise SubmitError("--vertex needs --project and --region")
    return f"projects/{project}/locations/{region}"


def vertex_schedule_name(project: str, region: str, schedule: str) -> str:
    """A schedule's full resource name from its ID or full name."""
    if schedule.startswith("projects/"):
        return schedule
    if not schedule.isdigit():
        raise SubmitError(f"schedule {schedule!r}: give the numeric schedule ID or its full resource name")
    return f"{vertex_parent(project, region)}/schedules/{schedule}"


def check_vertex_options(pipeline_root: str | None, service_account: str | None, network: str | None) -> None:
    """Reject Vertex options the API would refuse, before any call."""
    if pipeline_root is not None and not pipeline_root.startswith("gs://"):
        raise SubmitError(f"--pipeline-root {pipeline_root!r}: Vertex AI Pipelines needs a gs:// URI")
    if service_account and not _SERVICE_ACCOUNT.match(service_account):
        raise SubmitError(f"--service-account {service_account!r}: expected an e-mail such as "
                          f"trainer@PROJECT.iam.gserviceaccount.com")
    if network and not _NETWORK.match(network):
        raise SubmitError(f"--network {network!r}: expected projects/<project-number>/global/networks/<name>")


def vertex_pipeline_job(
    package_path: str | os.PathLike,
    project: str,
    region: str,
    pipeline_root: str,
    params: dict,
    display_name: str,
    job_id: str | None = None,
    labels: dict | None = None,
    enable_caching: bool | None = None,
    encryption_key: str | None = None,
    credentials=None,
):
    """An ``aiplatform.PipelineJob`` (constructed offline; nothing is sent).

    Args:
        package_path: the compiled YAML.
        project, region: where it runs.
        pipeline_root: ``gs://`` folder for artifacts.
        params: typed pipeline parameters.
        display_name: the job's display name.
        job_id: the job's ID (default: the SDK's ``<pipeline>-<timestamp>``).
        labels: checked labels.
        enable_caching: override every task's caching; None keeps the compiled settings.
        encryption_key: a CMEK key name.
        credentials: Google credentials (default: application default credentials).
    Returns:
        ``google.cloud.aiplatform.PipelineJob``.
    """
    from google.cloud import aiplatform

    vertex_parent(project, region)
    check_vertex_options(pipeline_root, None, None)
    if job_id is not None and not _VERTEX_JOB_ID.match(job_id):
        raise SubmitError(f"--job-id {job_id!r}: lowercase letters, digits and '-', starting with a letter, "
                          f"at most 128")
    return aiplatform.PipelineJob(
        display_name=display_name,
        template_path=str(package_path),
        job_id=job_id,
        pipeline_root=pipeline_root,
        parameter_values=params,
        enable_caching=enable_caching,
        labels=labels or None,
        encryption_spec_key_name=encryption_key,
        project=project,
        location=region,
        credentials=credentials,
    )


def vertex_create_job_request(job, service_account: str | None = None, network: str | None = None):
    """The ``CreatePipelineJobRequest`` that ``job.submit(service_account, network)`` sends."""
    from google.cloud.aiplatform.compat.types import pipeline_service

    check_vertex_options(None, service_account, network)
    resource = type(job._gca_resource)(job._gca_resource)  # a copy; submit() sets the same two fields
    if service_account:
        resource.service_account = service_account
    if network:
        resource.network = network
    return pipeline_service.CreatePipelineJobRequest(
        parent=vertex_parent(job.project, job.location), pipeline_job=resource, pipeline_job_id=job.job_id
    )


def vertex_create_schedule_request(
    job,
    display_name: str,
    cron_spec,
    start_time: dt.datetime | None = None,
    end_time: dt.datetime | None = None,
    max_concurrent_run_count: int = 1,
    max_run_count: int | None = None,
    allow_queueing: bool = False,
    service_account: str | None = None,
    network: str | None = None,
):
    """The ``CreateScheduleRequest`` of a Vertex AI pipeline schedule, as ``PipelineJobSchedule.create`` builds it.

    The schedule's ``create_pipeline_job_request`` comes from ``aiplatform.PipelineJobSchedule`` itself
    (runtime config, spec, labels, encryption); the trigger fields are then set as its ``create`` does.

    Args:
        job: from :func:`vertex_pipeline_job`.
        display_name: the schedule's name.
        cron_spec: a :class:`kfpc.pipelines.cron.CronSpec` checked for ``vertex``.
        start_time, end_time: the window in which runs are started.
        max_concurrent_run_count: runs allowed at once.
        max_run_count: stop after this many runs.
        allow_queueing: queue a run that would exceed the concurrency instead of skipping it.
        service_account, network: for every run.
    Returns:
        ``google.cloud.aiplatform_v1.types.CreateScheduleRequest``.
    """
    from google.cloud import aiplatform
    from google.cloud.aiplatform.compat.types import schedule_service

    if cron_spec.target != "vertex":
        raise SubmitError(f"cron {cron_spec.expression!r} was checked for {cron_spec.target}, not vertex")
    if max_concurrent_run_count < 1:
        raise SubmitError(f"--max-concurrency {max_concurrent_run_count}: must be at least 1")
    if max_run_count is not None and max_run_count < 1:
        raise SubmitError(f"--max-run-count {max_run_count}: must be at least 1")
    if start_time and end_time and end_time <= start_time:
        raise SubmitError(f"--end-time {end_time.isoformat()} is not after --start-time {start_time.isoformat()}")
    check_vertex_options(None, service_account, network)
    holder = aiplatform.PipelineJobSchedule(
        pipeline_job=job, display_name=display_name, credentials=job.credentials,
        project=job.project, location=job.location,
    )
    schedule = holder._gca_resource
    schedule.cron = cron_spec.expression
    if start_time:
        schedule.start_time = start_time
    if end_time:
        schedule.end_time = end_time
    if allow_queueing:
        schedule.allow_queueing = True
    if max_run_count:
        schedule.max_run_count = max_run_count
    schedule.max_concurrent_run_count = max_concurrent_run_count
    if service_account:
        schedule.create_pipeline_job_request.pipeline_job.service_account = service_account
    if network:
        schedule.create_pipeline_job_request.pipeline_job.network = network
    return schedule_service.CreateScheduleRequest(parent=vertex_parent(job.project, job.location), schedule=schedule)


def vertex_schedule_client(project: str, region: str, credentials=None):
    """The ``ScheduleServiceClient`` the SDK uses for ``region`` (no call is made until a request)."""
    from google.cloud.aiplatform import initializer, utils

    return initializer.global_config.create_client(
        client_class=utils.ScheduleClientWithOverride, credentials=credentials, location_override=region,
    )


def proto_to_dict(message) -> dict:
    """A request proto as the JSON the REST API would carry (camelCase, enum names)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(type(message).pb(message))


def vertex_dashboard_url(project: str, region: str, kind: str, resource_id: str) -> str:
    """The Cloud console link of a pipeline run (``kind="runs"``) or schedule (``kind="schedules"``)."""
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/{kind}/{resource_id}?project={project}"


def dry_run_document(target: str, requests: list[dict], notes: list[str] | None = None) -> str:
    """The text ``--dry-run`` prints: one JSON document with every request that would be sent."""
    from kfpc.components._redact import redact_obj

    doc = {"dry_run": True, "target": target, "requests": requests}
    if notes:
        doc["notes"] = notes
    # A --host like https://user:password@kfp... or a ?token= parameter must not be printed
    return json.dumps(redact_obj(json.loads(json.dumps(doc, default=str))), indent=2, sort_keys=False)


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A temporary folder for a pipeline compiled on the fly."""
    return tempfile.TemporaryDirectory(prefix="kfpc-submit-")
