"""The deployment files, checked offline: Dockerfile, infra/deploy/compose.yaml, infra/deploy/k8s/.

Nothing here starts a container (there may be no Docker engine); instead the files are held to
their published schemas (the compose-spec JSON schema vendored in tests/schemas/, Kubernetes'
OpenAPI schemas bundled in `kubernetes-validate`) and to the code they run: every variable is a
Settings variable, every command parses in the `saga` CLI, every probe is a route the API
serves, every worker role runs, and secrets are never literal.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import fields
from fnmatch import translate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml

from infra import settings as settings_module
from infra.cli import app as saga_app
from infra.run_cli import ALL_ROLES
from infra.settings import VARIABLE, ConfigError, Settings, load_settings
from infra.supervisor import STOP_GRACE_S

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "saga.env.example"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
# The oldest Kubernetes minor still offered by the big managed services, and the newest schema
# the package bundles: a field too new for the first or removed by the second fails here.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())
ONE_SHOT = ("migrate", "topics")

SETTINGS_VARIABLES = frozenset(settings_module._ENV)


def _field(name: str) -> Any:
    return next(f for f in fields(Settings) if f.name == name)


# Settings fields kept out of repr are the secrets (infra/settings.py marks them repr=False).
SECRET_VARIABLES = frozenset(
    var for var, (name, _) in settings_module._ENV.items() if not _field(name).repr
)


# --- loading ---------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def our_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile (not Kafka, PostgreSQL, Redis)."""
    return {name: s for name, s in spec["services"].items() if "build" in s}


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def manifests() -> list[dict[str, Any]]:
    """Every resource `kubectl apply -k` would send (what kustomization.yaml lists)."""
    docs = []
    for name in kustomization()["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / name).read_text()) if d)
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in manifests() if d["kind"] == kind]


def pod_specs() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in manifests():
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc, spec in pod_specs():
        for c in (*spec.get("initContainers", ()), *spec["containers"]):
            yield doc, c


def workers() -> list[dict[str, Any]]:
    return [d for d in manifests() if d["metadata"].get("labels", {}).get("checkout-saga/role")]


def config_map() -> dict[str, str]:
    (cm,) = of_kind("ConfigMap")
    return dict(cm["data"])


def example_secret() -> dict[str, Any]:
    return yaml.safe_load(SECRET_EXAMPLE.read_text())


def env_file_values(path: Path) -> dict[str, str]:
    """KEY=value lines as compose reads an env_file (comments and blanks skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: {line!r} is not KEY=value"
            values[name.strip()] = value
    return values


def interpolated(value: str, **variables: str) -> str:
    """Compose's ${NAME}, ${NAME:?error} and ${NAME:-default}, from `variables`."""

    def one(match: re.Match[str]) -> str:
        name, _, default = match.group(1).partition(":")
        return variables.get(name, default[1:] if default.startswith("-") else "")

    return re.sub(r"\$\{([^}]*)\}", one, value)


def saga_command(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Parses `saga ARGV` the way the CLI would, without running it: unknown commands or options,
    missing required options and bad values raise the CLI's usage errors."""
    command: Any = typer.main.get_command(saga_app)
    path: list[str] = []
    args = list(argv)
    ctx = command.make_context("saga", [], resilient_parsing=True)
    while hasattr(command, "list_commands"):  # a group: the next word names a subcommand
        assert args, f"`saga {' '.join(path)}` needs a subcommand"
        name = args.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"`saga {' '.join([*path, name])}` is not a command"
        path.append(name)
        command = sub
        ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
    parsed = command.make_context(path[-1], args, parent=ctx.parent)
    return path, dict(parsed.params)


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def container_argv(c: dict[str, Any]) -> list[str]:
    assert "command" not in c, f"{c['name']}: keep the image's ENTRYPOINT (saga); set args"
    return list(c["args"])


def probed(path: str) -> int:
    """The status the API answers `path` with, on fakes whose dependencies are all up."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.unit.api.fakes import make_world

    with TestClient(create_app(make_world().deps)) as client:
        return client.get(path).status_code


# --- parsing and schemas -----------------------------------------------------------------------


def test_every_yaml_file_under_infra_deploy_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.name for f in files} >= {"compose.yaml", "kustomization.yaml"}
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path} holds no document"
        assert all(isinstance(d, dict) for d in docs), path


def test_compose_file_matches_the_compose_spec_schema() -> None:
    schema = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    broken = compose()
    broken["services"]["api"]["healthcheck"]["interval"] = ["15s"]
    broken["services"]["api"]["restart_policy"] = "always"
    assert len(list(validator.iter_errors(broken))) == 2  # the schema really is enforced


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_openapi_schemas(version: str) -> None:
    docs = [*manifests(), example_secret()]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    broken = copy.deepcopy(of_kind("Deployment")[0])
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_kustomization_applies_every_manifest_but_never_the_example_secret() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {SECRET_EXAMPLE.name}
    assert all(d["kind"] != "Secret" for d in manifests())
    # Namespace-agnostic: `-n` or an overlay chooses it.
    assert "namespace" not in kustomization()
    assert all("namespace" not in d["metadata"] for d in manifests())


# --- settings and secrets ------------------------------------------------------------------------


def test_every_variable_set_anywhere_is_a_settings_variable() -> None:
    spec = compose()
    for name, service in our_services(spec).items():
        unknown = set(service["environment"]) - SETTINGS_VARIABLES
        assert not unknown, f"compose service {name} sets {unknown}"
    assert set(env_file_values(ENV_EXAMPLE)) <= SETTINGS_VARIABLES
    commented = re.findall(r"^# ([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M)
    assert commented and set(commented) <= SETTINGS_VARIABLES
    assert set(config_map()) <= SETTINGS_VARIABLES
    assert set(example_secret()["stringData"]) <= SETTINGS_VARIABLES
    for _, c in containers():
        for var in c.get("env", ()):
            if var["name"] in SETTINGS_VARIABLES:
                continue
            # Not a setting: only the downward API's pod name, spelled into an argument.
            assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", var
            assert f"$({var['name']})" in c["args"], f"{c['name']}: {var['name']} unused"


def test_secrets_are_never_literal() -> None:
    assert {"JWT_SECRET", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"} <= SECRET_VARIABLES
    assert not SECRET_VARIABLES & set(config_map())
    for name, service in our_services(compose()).items():
        assert not SECRET_VARIABLES & set(service["environment"]), name
    # The examples name what to provide, with nothing usable in it.
    assert set(env_file_values(ENV_EXAMPLE).values()) == {""}
    assert set(example_secret()["stringData"].values()) == {""}
    # The database password reaches compose only by interpolation, from the operator's .env.
    for service in (compose()["services"]["postgres"], *our_services(compose()).values()):
        env = service["environment"]
        value = env.get("POSTGRES_PASSWORD") or env["DATABASE_URL"].split("@")[0]
        assert re.search(r"(^|:)\$\{POSTGRES_PASSWORD:\?[^}]+\}$", value), value
    referenced = {
        ref[kind]["name"]
        for _, c in containers()
        for ref in c["envFrom"]
        for kind in ("secretRef", "configMapRef")
        if kind in ref
    }
    assert referenced == {example_secret()["metadata"]["name"], "saga-config"}
    assert of_kind("ConfigMap")[0]["metadata"]["name"] == "saga-config"


def required_variables() -> set[str]:
    """What the services refuse to start without: the fields of every `require(settings, ...)`
    call in infra/, plus the service URLs checked by hand (api_wiring._require, the
    projector, the notifier's SMTP_URL)."""
    found = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "SMTP_URL"}
    for path in (ROOT / "infra").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "require"
            ):
                found |= {VARIABLE[a.value] for a in node.args[1:] if isinstance(a, ast.Constant)}
    return found


def filled(values: dict[str, str]) -> dict[str, str]:
    # Long enough for JWT_SECRET's 32 bytes, acceptable to every other parser.
    return {k: v or "f" * 40 for k, v in values.items()}


def test_the_kubernetes_examples_fail_at_start_until_filled_then_cover_every_requirement() -> None:
    shipped = {**config_map(), **example_secret()["stringData"]}
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings(shipped)
    settings = load_settings(filled(shipped))
    missing = [v for v in required_variables() if not getattr(settings, _name(v))]
    assert missing == []


def test_the_compose_examples_fail_at_start_until_filled_then_cover_every_requirement() -> None:
    environment = {
        k: interpolated(str(v), POSTGRES_PASSWORD="pw")
        for k, v in compose()["services"]["api"]["environment"].items()
    }
    shipped = {**env_file_values(ENV_EXAMPLE), **environment}  # compose: environment wins
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings(shipped)
    settings = load_settings(filled(shipped))
    missing = [v for v in required_variables() if not getattr(settings, _name(v))]
    assert missing == []
    assert settings.database_url == "postgresql://saga:pw@postgres:5432/saga"


def _name(var: str) -> str:
    return settings_module._ENV[var][0]


# --- commands and roles --------------------------------------------------------------------------


def test_every_command_parses_in_the_saga_cli() -> None:
    argvs = [list(s["command"]) for s in our_services(compose()).values()]
    argvs += [container_argv(c) for _, c in containers()]
    assert len(argvs) > 10
    for argv in argvs:
        path, _ = saga_command(argv)
        if path == ["worker"]:
            assert option(argv, "--role") in ALL_ROLES, argv
    with pytest.raises(Exception, match="No such option"):
        saga_command(["worker", "--rol", "payment"])  # the parser does reject a typo
    with pytest.raises(Exception, match="role"):
        saga_command(["worker"])  # and a missing required option


def test_every_worker_role_runs_once_in_compose_and_kubernetes() -> None:
    services = our_services(compose())
    compose_roles = [
        option(s["command"], "--role") for s in services.values() if s["command"][0] == "worker"
    ]
    kinds = {w["kind"] for w in workers()}
    k8s_roles = [
        option(container_argv(w["spec"]["template"]["spec"]["containers"][0]), "--role")
        for w in workers()
        if w["kind"] == "StatefulSet"
    ]
    assert sorted(compose_roles) == sorted(ALL_ROLES)
    assert sorted(k8s_roles) == sorted(ALL_ROLES)
    assert kinds == {"StatefulSet", "PodDisruptionBudget"}


def test_compose_and_kubernetes_run_the_same_commands() -> None:
    def shape(argv: list[str]) -> list[str]:
        # The instance id differs by design: 0 on one compose host, the pod name on k8s.
        return [
            ("INSTANCE" if i and argv[i - 1] == "--instance" else a) for i, a in enumerate(argv)
        ]

    compose_cmds = sorted(shape(list(s["command"])) for s in our_services(compose()).values())
    k8s_cmds = sorted(shape(container_argv(c)) for _, c in containers())
    assert compose_cmds == k8s_cmds


def test_worker_instance_ids_are_unique_per_pod_and_stable_across_restarts() -> None:
    # The instance id suffixes the Kafka transactional id: two live pods with one id fence each
    # other, and a replacement with a new id would not fence its predecessor.
    for w in (w for w in workers() if w["kind"] == "StatefulSet"):
        (c,) = w["spec"]["template"]["spec"]["containers"]
        instance = option(c["args"], "--instance")
        ref = re.fullmatch(r"\$\((\w+)\)", instance)
        assert ref, f"{w['metadata']['name']}: --instance {instance} is one value for all pods"
        (var,) = (e for e in c["env"] if e["name"] == ref.group(1))
        assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    services = our_services(compose()).values()
    ids = [
        (option(s["command"], "--role"), option(s["command"], "--instance"))
        for s in services
        if s["command"][0] == "worker"
    ]
    assert len(ids) == len(set(ids))
    assert all("deploy" not in s or s["deploy"].get("replicas", 1) == 1 for s in services)


def test_each_worker_pod_has_exactly_one_disruption_budget_that_lets_drains_proceed() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for workload in (*of_kind("StatefulSet"), *of_kind("Deployment")):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, workload["metadata"]["name"]  # eviction refuses overlaps
        (budget,) = covering
        replicas = workload["spec"].get("replicas", 1)
        # minAvailable equal to the replicas would block every node drain forever.
        assert (
            budget["spec"].get("maxUnavailable", 0) >= 1
            or budget["spec"]["minAvailable"] < replicas
        )


def test_worker_statefulsets_name_a_headless_service_that_selects_them() -> None:
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    for w in of_kind("StatefulSet"):
        service = services[w["spec"]["serviceName"]]
        assert service["spec"]["clusterIP"] == "None"
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()


def test_workers_get_at_least_the_supervisors_grace_to_stop_cleanly() -> None:
    for w in of_kind("StatefulSet"):
        assert w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= STOP_GRACE_S
    for name, s in our_services(compose()).items():
        if s["command"][0] == "worker":
            assert _seconds(s["stop_grace_period"]) >= STOP_GRACE_S, name


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


# --- probes ------------------------------------------------------------------------------------


def test_api_probes_hit_routes_the_api_serves_on_its_configured_port() -> None:
    assert probed("/no-such-route") == 404  # an unserved path would fail the checks below
    (deployment,) = (d for d in of_kind("Deployment") if d["metadata"]["name"] == "saga-api")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container_argv(c) == ["api"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(config_map()["API_PORT"])
    assert config_map()["API_HOST"] == "0.0.0.0"  # reachable from the kubelet and the Service
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert probed(get["path"]) == 200, probe
        assert get["port"] in ports, probe
    (service,) = (s for s in of_kind("Service") if s["metadata"]["name"] == "saga-api")
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    api = compose()["services"]["api"]
    url = urlsplit(re.search(r"http://[^']+", api["healthcheck"]["test"][-1]).group(0))
    assert probed(url.path) == 200
    assert url.port == int(api["environment"]["API_PORT"])
    assert any(p.endswith(f":{url.port}") for p in api["ports"])


def test_analytics_runs_as_one_process_probed_on_its_view() -> None:
    # Its windows span every partition (ADR 0018): one replica, never two during an update.
    (deployment,) = (d for d in of_kind("Deployment") if d["metadata"]["name"] == "saga-analytics")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container_argv(c) == ["analytics"]
    service = compose()["services"]["analytics"]
    assert "deploy" not in service
    defaults = Settings()
    for probe in (c["livenessProbe"]["exec"]["command"][-1], service["healthcheck"]["test"][-1]):
        url = urlsplit(re.search(r"http://[^']+", probe).group(0))
        assert (url.hostname, url.port) == (
            defaults.analytics_web_host,
            defaults.analytics_web_port,
        )
        assert url.path == "/analytics"
    assert "ANALYTICS_WEB_PORT" not in config_map()


def test_every_worker_probe_reads_the_metrics_port_it_is_told_to_serve() -> None:
    """The liveness probe is an HTTP GET of /metrics: on the port the worker is told to serve
    (METRICS_PORT, or the projector's own variable), bound beyond loopback so the kubelet and
    Prometheus reach it."""
    for w in of_kind("StatefulSet"):
        (c,) = w["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        probe = c["livenessProbe"]["httpGet"]
        assert probe["path"] == "/metrics", w["metadata"]["name"]
        if "projector" in w["metadata"]["name"]:
            assert ports[probe["port"]] == int(env["SAGA_PROJECTOR_METRICS_PORT"])
        else:
            assert ports[probe["port"]] == int(env["METRICS_PORT"]), w["metadata"]["name"]
            assert env["METRICS_HOST"] == "0.0.0.0", w["metadata"]["name"]
        assert "readinessProbe" not in c  # workers take no traffic
    service = compose()["services"]["projector"]
    test = service["healthcheck"]["test"][-1]
    assert f":{service['environment']['SAGA_PROJECTOR_METRICS_PORT']}/metrics" in test


# --- images ------------------------------------------------------------------------------------


def test_compose_and_kubernetes_run_one_image_tagged_with_the_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (image,) = {s["image"] for s in our_services(compose()).values()}
    (rewrite,) = kustomization()["images"]
    assert {c["image"] for _, c in containers()} == {rewrite["name"]}
    assert image == f"{rewrite['name']}:{version}"
    assert rewrite["newTag"] == version
    for s in our_services(compose()).values():
        assert s["build"] == {"context": "../..", "dockerfile": "Dockerfile"}
    assert (COMPOSE.parent / "../../Dockerfile").resolve() == ROOT / "Dockerfile"


def test_compose_kafka_is_the_version_the_tests_run() -> None:
    lock = (ROOT / "kafka.lock").read_text()
    version = re.search(r"org\.apache\.kafka:kafka_2\.13:(\S+?) ", lock).group(1)
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{version}"


# --- compose wiring ------------------------------------------------------------------------------


def test_compose_starts_services_only_after_migrations_and_topics() -> None:
    spec = compose()
    for name, service in our_services(spec).items():
        needs = service["depends_on"]
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        for one_shot in ONE_SHOT:
            assert needs[one_shot]["condition"] == "service_completed_successfully", name
    assert spec["services"]["migrate"]["command"] == ["db", "upgrade"]
    assert spec["services"]["topics"]["command"] == ["topics", "ensure"]
    assert spec["services"]["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert spec["services"]["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for infra in ("kafka", "postgres", "redis"):
        assert spec["services"][infra]["healthcheck"]["test"], infra


def test_compose_kafka_is_a_single_kraft_node_its_clients_can_reach() -> None:
    spec = compose()
    env = {k: str(v) for k, v in spec["services"]["kafka"]["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for single_broker in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[single_broker] == "1", single_broker
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    advertised = {urlsplit(u).netloc for u in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    for name, service in our_services(spec).items():
        app_env = service["environment"]
        assert app_env["KAFKA_BOOTSTRAP_SERVERS"] in advertised, name
        assert int(app_env["SAGA_REPLICATION_FACTOR"]) == 1  # one broker holds one replica
        assert urlsplit(app_env["REDIS_URL"]).hostname in spec["services"]
        assert urlsplit(interpolated(app_env["DATABASE_URL"])).hostname in spec["services"]


# --- container hardening ---------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_dockerfile_installs_the_lock_then_the_package_and_runs_saga_unprivileged() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = [arg for op, arg in steps if op == "RUN"]
    sync = next(i for i, r in enumerate(runs) if "requirements.lock" in r)
    package = next(i for i, r in enumerate(runs) if "--no-deps" in r)
    assert sync < package
    assert "-e ." in runs[package]  # events/avro.py reads ../schemas/avro beside the package
    (user,) = [arg for op, arg in steps if op == "USER"]
    uid = int(user.split(":")[0])
    assert uid > 0
    (entrypoint,) = [arg for op, arg in steps if op == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["saga"]
    for doc, spec in pod_specs():
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, doc["metadata"]["name"]
        assert context["runAsUser"] == uid, doc["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False
    for doc, c in containers():
        where = f"{doc['metadata']['name']}/{c['name']}"
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], where
        assert set(c["resources"]) == {"requests", "limits"}, where
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
        assert "memory" in c["resources"]["limits"], where
        if c["securityContext"].get("readOnlyRootFilesystem"):
            assert {"mountPath": "/tmp", "name": "tmp"} in c["volumeMounts"], where


def dockerignored(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            body = line.lstrip("!").strip("/")
            regex = translate(body).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
            patterns.append((negated, re.compile(regex)))
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negated, regex in patterns:
        if any(regex.match(p) for p in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_the_image_runs_and_drops_local_state() -> None:
    copied = [arg.split()[0] for op, arg in dockerfile() if op == "COPY"]
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    runtime = [
        *copied,
        *(p.rstrip("*") + "/__init__.py" for p in packages),
        "schemas/avro/StartCheckout.avsc",
        "db/migrations/env.py",
        "db/migrations/versions/0006_stock_freezes.py",
        "api/console/index.html",
    ]
    for path in runtime:
        assert (ROOT / path).exists(), path
        assert not dockerignored(path), path
    for local in (
        ".venv/bin/python",
        ".data/saga.env",
        ".cache/x.jar",
        "infra/__pycache__/a.pyc",
        "tests/unit/test_deploy_files.py",
        "infra/deploy/saga.env",
    ):
        assert dockerignored(local), local
