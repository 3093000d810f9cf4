"""The deployment files: deploy/kubernetes, deploy/systemd, the Dockerfile.

Each is checked by the tool that reads it where one runs offline (the Kubernetes API schemas,
yamllint, systemd-analyze), then for the properties the runs rely on: a scheduled run never
overlaps the next one, the pods together stay inside getbill's request budget, credentials
come only from the Secret, and every command line names only options the archiver has.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import socket
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from archiver.cli import main
from archiver.config import FILE_KEYS, SECRET_FILE_KEYS, read_config_file

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
SYSTEMD = ROOT / "deploy" / "systemd"

# The oldest Kubernetes the manifests are for: backoffLimitPerIndex (the backfill) is GA
# there. They are validated against it and against the newest the validator ships.
K8S_VERSION = "1.33"
NEWEST_K8S_VERSION = ".".join(kubernetes_validate.latest_version().split(".")[:2])
# getbill's limit: API requests per hour per OAuth client, shared by every pod using it.
HOURLY_REQUEST_BUDGET = 1000
SECRET_NAME = "archiver-credentials"
CONFIGMAP_NAME = "archiver-config"
CREDENTIALS = {
    "GETBILL_CLIENT_ID",
    "GETBILL_CLIENT_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}
SECRET_LIKE = re.compile(r"SECRET|TOKEN|PASSWORD|ACCESS_KEY|CLIENT_ID", re.I)
PLACEHOLDER = "REPLACE_ME"

# Mirrors the options of `archiver sync` (archiver/cli/sync_cmd.py), option -> takes a value.
# Kept here so these files are checked before that command exists; once it is registered,
# the manifests are checked against its real options as well.
SYNC_OPTIONS = {
    "--since": True,
    "--lookback": True,
    "--full": False,
    "--max-requests": True,
    "--shard": True,
    "--shards": True,
    "--policy": True,
    "--concurrency": True,
    "--dossiers": False,
    "--no-dossiers": False,
    "--json": False,
    "--metrics-file": True,
    "--dry-run": False,
}

MANIFESTS = sorted(K8S.glob("*.yaml"))


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _one(path: Path) -> dict[str, Any]:
    (doc,) = _load(path)
    return doc


CRONJOB = _one(K8S / "cronjob-sync.yaml")
BACKFILL = _one(K8S / "job-backfill.yaml")
CONFIGMAP = _one(K8S / "configmap.yaml")
SECRET = _one(K8S / "secret.example.yaml")
LISTEN = _one(K8S / "listen-deployment.yaml")
LISTEN_SERVICE = _one(K8S / "listen-service.yaml")
WEBHOOK_SECRET = _one(K8S / "secret-webhook.example.yaml")
WEBHOOK_SECRET_NAME = "archiver-webhook"
WEBHOOK_KEYS = {"GETBILL_WEBHOOK_SECRET", "GETBILL_WEBHOOK_SECRET_PREVIOUS"}


def _job_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return _job_spec(doc)["template"]["spec"]


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod_spec(doc)["containers"]
    return container


WORKLOADS = pytest.mark.parametrize("doc", [CRONJOB, BACKFILL], ids=["cronjob", "backfill"])


# --- command lines -------------------------------------------------------------------------


def _click_options(command: click.Command) -> dict[str, bool]:
    """Every option spelling of ``command`` -> whether it takes a value."""
    table = {"-h": False, "--help": False}
    for param in command.params:
        if isinstance(param, click.Option):
            takes_value = not (param.is_flag or param.count)
            for name in (*param.opts, *param.secondary_opts):
                table[name] = takes_value
    return table


def _parse(args: list[str], options: dict[str, bool], where: str) -> dict[str, str | None]:
    """``args`` as option -> value (None for a flag); an unknown option fails the test."""
    found: dict[str, str | None] = {}
    tokens = iter(args)
    for token in tokens:
        name, eq, inline = token.partition("=")
        assert name in options, f"{where}: {name!r} is not an option of {sorted(options)}"
        if options[name]:
            value = inline if eq else next(tokens, None)
            assert value is not None, f"{where}: {name} needs a value"
            found[name] = value
        else:
            assert not eq, f"{where}: {name} is a flag and takes no value"
            found[name] = None
    return found


def _sync_args(args: list[str], where: str) -> dict[str, str | None]:
    """The ``archiver [global options] sync [sync options]`` of a command line, checked."""
    assert "sync" in args, f"{where}: not an `archiver sync`: {args}"
    split = args.index("sync")
    _parse(args[:split], _click_options(main), f"{where} (global options)")
    found = _parse(args[split + 1 :], SYNC_OPTIONS, f"{where} (sync options)")
    real = main.commands.get("sync")
    if real is not None:
        _parse(args[split + 1 :], _click_options(real), f"{where} (archiver sync --help)")
    return found


def _container_sync_args(doc: dict[str, Any]) -> dict[str, str | None]:
    container = _container(doc)
    # The image's ENTRYPOINT is `archiver`: the manifests give its arguments only.
    assert "command" not in container
    return _sync_args([str(a) for a in container["args"]], doc["metadata"]["name"])


# --- Kubernetes: the tools -----------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: the schemas must come with the package."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_there_are_manifests() -> None:
    names = {p.name for p in MANIFESTS}
    assert {"cronjob-sync.yaml", "job-backfill.yaml", "configmap.yaml"} <= names
    assert "secret.example.yaml" in names and "secret.yaml" not in names
    assert {"listen-deployment.yaml", "listen-service.yaml", "secret-webhook.example.yaml"} <= names


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("version", [K8S_VERSION, NEWEST_K8S_VERSION])
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_for_kubernetes(path: Path, version: str) -> None:
    docs = _load(path)
    assert docs
    for doc in docs:
        # strict: a field the API does not know (a typo) is an error, not silently dropped.
        assert kubernetes_validate.validate(doc, version, strict=True) == version


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    "path,value",
    [
        (["spec", "startingDeadlineSeconds"], "ten minutes"),
        (["spec", "jobTemplate", "spec", "activeDeadLineSeconds"], 600),
        (["spec", "jobTemplate", "spec", "template", "spec", "automountToken"], False),
    ],
    ids=["wrong-type", "misspelt-field", "unknown-pod-field"],
)
def test_the_validator_refuses_a_broken_manifest(path: list[str], value: object) -> None:
    doc = copy.deepcopy(CRONJOB)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_yamllint_finds_nothing() -> None:
    config = YamlLintConfig(file=str(K8S / ".yamllint"))
    problems = []
    for path in [*MANIFESTS, K8S / ".yamllint"]:
        problems += [f"{path.name}:{p}" for p in linter.run(path.read_text(), config, str(path))]
    # Warnings count too (yamllint --strict).
    assert problems == []


# --- Kubernetes: what the runs rely on -----------------------------------------------------


def test_cronjob_never_overlaps_the_next_run() -> None:
    spec = CRONJOB["spec"]
    assert spec["schedule"] == "15 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    job = _job_spec(CRONJOB)
    # Started at the latest startingDeadlineSeconds late, stopped activeDeadlineSeconds
    # later: over before the next hourly start.
    assert spec["startingDeadlineSeconds"] > 0
    assert 0 < job["activeDeadlineSeconds"] < 3600
    assert spec["startingDeadlineSeconds"] + job["activeDeadlineSeconds"] < 3600
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert job["backoffLimit"] <= 1


@WORKLOADS
def test_pods_run_unprivileged(doc: dict[str, Any]) -> None:
    pod = _pod_spec(doc)
    container = _container(doc)
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _dockerfile_uid() != 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    image = container["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


@WORKLOADS
def test_pods_have_resources(doc: dict[str, Any]) -> None:
    resources = _container(doc)["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind


@WORKLOADS
def test_the_pods_writable_paths_are_empty_dirs(doc: dict[str, Any]) -> None:
    """With a read-only root filesystem, /tmp and the catalog need volumes of their own."""
    volumes = {v["name"]: v for v in _pod_spec(doc)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(doc)["volumeMounts"]}
    for name in mounts.values():
        assert "emptyDir" in volumes[name], name
        assert volumes[name]["emptyDir"].get("sizeLimit"), name
    catalog = Path(CONFIGMAP["data"]["ARCHIVER_CATALOG"])
    assert "/tmp" in mounts
    assert any(Path(m) in catalog.parents for m in mounts), catalog


@WORKLOADS
def test_credentials_come_only_from_the_secret(doc: dict[str, Any]) -> None:
    container = _container(doc)
    secret_keys = set(SECRET["stringData"])
    from_secret = set()
    for var in container.get("env", []):
        name = var["name"]
        assert "value" not in var or not SECRET_LIKE.search(name), f"{name} given literally"
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == SECRET_NAME and ref["key"] in secret_keys, var
            assert not ref.get("optional"), f"{name}: a missing key must stop the pod"
            from_secret.add(name)
        else:
            assert not SECRET_LIKE.search(name), f"{name} does not come from the Secret"
    assert from_secret == CREDENTIALS
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, source
        assert source["configMapRef"]["name"] == CONFIGMAP_NAME
    text = yaml.safe_dump(doc)
    assert PLACEHOLDER not in text


def test_the_secret_is_an_example_of_placeholders() -> None:
    assert SECRET["kind"] == "Secret" and SECRET["metadata"]["name"] == SECRET_NAME
    assert "data" not in SECRET, "base64 data would hide what is in it"
    assert set(SECRET["stringData"]) == CREDENTIALS
    assert set(SECRET["stringData"].values()) == {PLACEHOLDER}


def test_the_configmap_holds_settings_the_archiver_reads_and_no_secret() -> None:
    assert CONFIGMAP["metadata"]["name"] == CONFIGMAP_NAME
    known = {name for names in FILE_KEYS.values() for name in names} | {"TMPDIR"}
    data = CONFIGMAP["data"]
    assert set(data) <= known, set(data) - known
    assert {"ARCHIVER_BUCKET", "ARCHIVER_POLICY", "AWS_REGION", "GETBILL_API_URL"} <= set(data)
    assert not [k for k in data if SECRET_LIKE.search(k)]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"


@WORKLOADS
def test_command_lines_name_only_real_options(doc: dict[str, Any]) -> None:
    options = _container_sync_args(doc)
    # The pods' results are read from their logs: one JSON summary, no progress display.
    assert "--json" in options
    assert "--max-requests" in options


def test_backfill_is_one_pod_per_shard() -> None:
    spec = BACKFILL["spec"]
    options = _container_sync_args(BACKFILL)
    assert "--full" in options
    assert spec["completionMode"] == "Indexed"
    shards = int(options["--shards"] or 0)
    assert spec["completions"] == spec["parallelism"] == shards > 1
    # Each pod takes its shard from JOB_COMPLETION_INDEX, which Kubernetes sets: a fixed
    # --shard or ARCHIVER_SHARD would give every pod the same one.
    assert "--shard" not in options
    env = {v["name"] for v in _container(BACKFILL).get("env", [])}
    assert not env & {"JOB_COMPLETION_INDEX", "ARCHIVER_SHARD"}
    assert not set(CONFIGMAP["data"]) & {"JOB_COMPLETION_INDEX", "ARCHIVER_SHARD"}


def _max_requests(doc: dict[str, Any]) -> int:
    value = _container_sync_args(doc)["--max-requests"]
    assert value is not None
    return int(value)


def test_backfill_and_hourly_sync_stay_inside_the_request_budget() -> None:
    """The worst hour: every shard and the hourly sync spend their whole --max-requests,
    once per allowed attempt (a retried pod spends it again)."""
    spec = BACKFILL["spec"]
    shards = spec["completions"]
    attempts = spec["backoffLimitPerIndex"] + 1
    backfill = shards * attempts * _max_requests(BACKFILL)
    hourly = (_job_spec(CRONJOB)["backoffLimit"] + 1) * _max_requests(CRONJOB)
    assert shards * _max_requests(BACKFILL) < HOURLY_REQUEST_BUDGET
    assert backfill + hourly < HOURLY_REQUEST_BUDGET, (backfill, hourly)


def test_backfill_stops_every_shard_on_a_configuration_error() -> None:
    (rule,) = BACKFILL["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"] == {
        "containerName": _container(BACKFILL)["name"],
        "operator": "In",
        "values": [2],
    }


# --- Kubernetes: the listener --------------------------------------------------------------


def _listen_args() -> dict[str, str | None]:
    container = _container(LISTEN)
    assert "command" not in container  # the image's ENTRYPOINT is `archiver`
    args = [str(a) for a in container["args"]]
    assert "listen" in args, args
    split = args.index("listen")
    _parse(args[:split], _click_options(main), "listen (global options)")
    return _parse(args[split + 1 :], _click_options(main.commands["listen"]), "archiver listen")


def test_the_listener_runs_listen_on_the_port_it_declares() -> None:
    options = _listen_args()
    assert options["--host"] == "0.0.0.0"  # reached through the Service, not on loopback
    (port,) = _container(LISTEN)["ports"]
    assert port["name"] == "http" and port["containerPort"] == int(options["--port"] or 0)
    assert int(options["--workers"] or 0) >= 1


def test_the_listener_is_ready_only_while_healthy() -> None:
    container = _container(LISTEN)
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == ("/healthz", "http"), probe


def test_the_listener_always_has_a_ready_pod_and_drains_on_stop() -> None:
    spec = LISTEN["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = _pod_spec(LISTEN)
    assert pod["restartPolicy"] == "Always"
    assert pod["terminationGracePeriodSeconds"] >= 30


def test_the_listener_runs_unprivileged_with_resources() -> None:
    pod = _pod_spec(LISTEN)
    container = _container(LISTEN)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _dockerfile_uid() != 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    image = container["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
    # The queue file goes beside the catalog, on a volume the pod may write.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    catalog = Path(CONFIGMAP["data"]["ARCHIVER_CATALOG"])
    assert "/tmp" in mounts
    (where,) = [m for m in mounts if Path(m) in catalog.parents]
    assert volumes[mounts[where]]["emptyDir"]["sizeLimit"]


def test_the_listeners_secrets_come_from_their_secrets_only() -> None:
    container = _container(LISTEN)
    from_secret: dict[str, str] = {}
    for var in container["env"]:
        name = var["name"]
        assert "value" not in var, f"{name} given literally"
        ref = var["valueFrom"]["secretKeyRef"]
        from_secret[name] = ref["name"]
        if name in WEBHOOK_KEYS:
            assert ref["name"] == WEBHOOK_SECRET_NAME and ref["key"] in WEBHOOK_SECRET["stringData"]
            # The previous secret exists only during a rotation.
            assert bool(ref.get("optional")) == (name == "GETBILL_WEBHOOK_SECRET_PREVIOUS")
        else:
            assert ref["name"] == SECRET_NAME and ref["key"] in SECRET["stringData"]
            assert not ref.get("optional"), f"{name}: a missing key must stop the pod"
    assert set(from_secret) == CREDENTIALS | WEBHOOK_KEYS
    assert [s["configMapRef"]["name"] for s in container["envFrom"]] == [CONFIGMAP_NAME]
    assert PLACEHOLDER not in yaml.safe_dump(LISTEN)
    assert WEBHOOK_SECRET["metadata"]["name"] == WEBHOOK_SECRET_NAME
    assert set(WEBHOOK_SECRET["stringData"]) == WEBHOOK_KEYS
    assert set(WEBHOOK_SECRET["stringData"].values()) == {PLACEHOLDER}


def test_the_listen_service_reaches_the_listeners_pods() -> None:
    spec = LISTEN_SERVICE["spec"]
    labels = LISTEN["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items()
    assert LISTEN["spec"]["selector"]["matchLabels"] == spec["selector"]
    assert spec["type"] == "ClusterIP"  # TLS is terminated in front of it
    (port,) = spec["ports"]
    assert port["targetPort"] == "http"


# --- systemd -------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat; backslash continues a line)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    assert not pending, f"{path.name}: ends in a continuation"
    return sections


SERVICE = _unit(SYSTEMD / "archiver-sync.service")
TIMER = _unit(SYSTEMD / "archiver-sync.timer")


def _last(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    return unit[section][key][-1]


def test_timer_runs_hourly_and_makes_up_missed_runs() -> None:
    assert _last(TIMER, "Timer", "OnCalendar") == "*-*-* *:15:00"
    assert _last(TIMER, "Timer", "Persistent") == "true"
    assert _last(TIMER, "Timer", "RandomizedDelaySec")
    assert _last(TIMER, "Install", "WantedBy") == "timers.target"
    # Without Unit=, a timer starts the service of its own name.
    assert "Unit" not in TIMER["Timer"]


def _minutes(span: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(min|m|h|s)?", span)
    assert match, span
    factor = {"h": 60.0, "s": 1 / 60}.get(match.group(2) or "s", 1.0)
    return int(match.group(1)) * factor


def test_service_is_a_hardened_oneshot() -> None:
    service = SERVICE["Service"]
    assert _last(SERVICE, "Service", "Type") == "oneshot"
    assert _last(SERVICE, "Service", "User") not in ("", "root", "0")
    assert _last(SERVICE, "Service", "EnvironmentFile") == "/etc/archiver/env"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key
    # Exit 3 (partial) leaves the unit in a good state: the next run resumes.
    assert "3" in _last(SERVICE, "Service", "SuccessExitStatus").split()
    # A oneshot's start timeout is the whole run: over before the next hourly start.
    assert _minutes(_last(SERVICE, "Service", "TimeoutStartSec")) < 60


def test_service_writes_only_where_it_may() -> None:
    service = SERVICE["Service"]
    writable = [Path("/var/lib") / d for v in service["StateDirectory"] for d in v.split()]
    writable += [Path(p.lstrip("-")) for v in service["ReadWritePaths"] for p in v.split()]
    env = dict(v.split("=", 1) for v in service.get("Environment", []))
    options = _sync_args(_service_args(), "archiver-sync.service")
    for path in (Path(env["ARCHIVER_CATALOG"]), Path(str(options["--metrics-file"]))):
        assert any(d in path.parents for d in writable), path


def _service_args() -> list[str]:
    (exec_start,) = SERVICE["Service"]["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0].startswith("/") and argv[0].endswith("/archiver"), argv[0]
    return argv[1:]


def test_service_command_line_names_only_real_options() -> None:
    args = _service_args()
    assert args[args.index("--config") + 1] == "/etc/archiver/config.toml"
    options = _sync_args(args, "archiver-sync.service")
    assert "--json" in options and "--metrics-file" in options


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_accepts_the_units(tmp_path: Path) -> None:
    # verify also checks that ExecStart= exists: a stand-in for the installed archiver.
    service = (SYSTEMD / "archiver-sync.service").read_text()
    argv0 = shlex.split(SERVICE["Service"]["ExecStart"][0])[0]
    (tmp_path / "archiver-sync.service").write_text(service.replace(argv0, "/bin/true"))
    shutil.copy(SYSTEMD / "archiver-sync.timer", tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", "./archiver-sync.service", "./archiver-sync.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown keys and bad values are warnings on stderr with exit 0: none allowed.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_example_settings_are_accepted_and_hold_no_secret() -> None:
    path = SYSTEMD / "config.example.toml"
    document = tomllib.loads(path.read_text())
    assert not set(document["default"]) & set(SECRET_FILE_KEYS)
    values = read_config_file(path, "default", required=True)
    assert {"ARCHIVER_BUCKET", "ARCHIVER_POLICY", "GETBILL_API_URL"} <= set(values)
    env = {}
    for line in (SYSTEMD / "env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    assert set(env) == CREDENTIALS and set(env.values()) == {PLACEHOLDER}


# --- Dockerfile ----------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def _instructions(name: str) -> list[str]:
    return [rest for word, rest in _dockerfile() if word == name]


def _dockerfile_uid() -> int:
    *_, user = _instructions("USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "USER must be numeric for runAsNonRoot to check it"
    return int(uid)


def test_dockerfile_base_image_is_a_pinned_slim_python() -> None:
    (base,) = _instructions("FROM")
    name, _, tag = base.partition(":")
    assert name == "python" and tag.startswith("3.11-slim"), base
    assert "latest" not in tag
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.11"


def test_dockerfile_runs_as_an_unprivileged_numeric_user() -> None:
    assert _dockerfile_uid() >= 10000
    words = [word for word, _ in _dockerfile()]
    # Nothing runs as root after USER.
    assert "RUN" not in words[words.index("USER") :]


def test_dockerfile_installs_the_package_and_runs_archiver() -> None:
    assert any("pip install --no-cache-dir ." in run for run in _instructions("RUN"))
    (entrypoint,) = _instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["archiver"]
    env = " ".join(_instructions("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    assert not _instructions("HEALTHCHECK"), "a batch job has no health to check"
    assert "WORKDIR" in {word for word, _ in _dockerfile()}


def test_dockerfile_holds_no_secret() -> None:
    for word, rest in _dockerfile():
        if word in ("ENV", "ARG", "LABEL"):
            assert not SECRET_LIKE.search(rest), rest
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"--mount=type=secret|AKIA[0-9A-Z]{16}", text)


def _copied() -> set[str]:
    sources = set()
    for args in _instructions("COPY"):
        *srcs, _dest = args.split()
        sources |= {s.rstrip("/") for s in srcs if not s.startswith("--")}
    return sources


def test_dockerfile_copies_everything_the_wheel_is_built_from() -> None:
    sources = _copied()
    for source in sources:
        assert (ROOT / source).exists(), source
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= sources
    for package, globs in pyproject["tool"]["setuptools"]["package-data"].items():
        assert package in sources, package
        for pattern in globs:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern} matches nothing"


def test_dockerignore_lets_in_only_what_is_copied() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "exclude everything, then let in what the Dockerfile copies"
    assert {line[1:].rstrip("/") for line in lines if line.startswith("!")} == _copied()
    for pattern in ("**/*.db", "**/*.log", "**/*.pdf", "**/__pycache__", ".venv", ".git"):
        assert pattern in lines, pattern
