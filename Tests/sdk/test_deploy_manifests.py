"""Checks deploy/ (several replicas on one PostgreSQL, #27) without a container engine or a cluster.

Schema-level checks of compose.yaml, the Kubernetes manifests, the systemd units and the Dockerfile,
plus, where the tools are installed, `nginx -t`, nginx itself in front of stub replicas, and
`systemd-analyze verify`. No gateway is started.
"""
import http.server
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

REPLICAS = ["gateway-1", "gateway-2", "gateway-3"]
# The only flags `gateway serve` and `gateway migrate` take (no invented ones in the deploy files).
SERVE_FLAGS = {"--data", "--config", "--host", "--port", "--threads", "--database-url"}
GATEWAY_BINARY = "/opt/gateway/bin/gateway"
# Shapes of real credentials: none may appear anywhere under deploy/.
REAL_SECRET = re.compile(
    r"\bsk-[A-Za-z0-9_-]{12,}|\bsk-ant-[A-Za-z0-9_-]+|\bAKIA[0-9A-Z]{16}\b|\bghp_[A-Za-z0-9]{20,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]+|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def is_placeholder(value: str) -> bool:
    """Empty, or visibly fake."""
    return value == "" or "replace-me" in value


def env_file(path: str) -> dict[str, str]:
    out = {}
    for line in read(path).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        out[key.strip()] = value.strip()
    return out


def policy_key_variables() -> set[str]:
    gateway = yaml.safe_load(read(os.path.join(ROOT, "policies", "gateway.yaml")))
    return {p["api_key_env"] for p in gateway["providers"] if p.get("api_key_env")}


def upstream_servers(conf: str) -> list[str]:
    """The `server` lines of nginx-lb.conf's upstream block, without the trailing semicolon."""
    conf = re.sub(r"#.*", "", conf)
    (block,) = re.findall(r"^upstream\s+\w+\s*{(.*?)^}", conf, re.M | re.S)
    return re.findall(r"^\s*server\s+([^;]*);", block, re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_real_credentials_anywhere_in_deploy():
    for directory, _, files in os.walk(DEPLOY):
        for name in files:
            path = os.path.join(directory, name)
            match = REAL_SECRET.search(read(path))
            assert match is None, f"{os.path.relpath(path, ROOT)} holds something shaped like a real secret"


# ---------------------------------------------------------------------------------------------------
# compose.yaml

DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
# The Compose specification's service keys; anything else (a typo) is rejected.
SERVICE_KEYS = """annotations attach build blkio_config cap_add cap_drop cgroup cgroup_parent command configs
container_name cpu_count cpu_percent cpu_shares cpu_quota cpu_period cpu_rt_period cpu_rt_runtime cpus
cpuset credential_spec depends_on deploy develop device_cgroup_rules devices dns dns_opt dns_search
domainname entrypoint env_file environment expose extends external_links extra_hosts gpus group_add
healthcheck hostname image init ipc isolation labels label_file links logging mac_address mem_limit
mem_reservation mem_swappiness memswap_limit models network_mode networks oom_kill_disable oom_score_adj
pid pids_limit platform ports post_start pre_stop privileged profiles provider pull_policy read_only
restart runtime scale secrets security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt
sysctls tmpfs tty ulimits user userns_mode uts volumes volumes_from working_dir""".split()

COMPOSE_SCHEMA = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "name": {"type": "string"},
        "services": {
            "type": "object",
            "additionalProperties": False,
            "patternProperties": {"^[a-zA-Z0-9._-]+$": {"$ref": "#/definitions/service"}},
        },
        "volumes": {"type": "object"},
        "secrets": {"type": "object"},
        "networks": {"type": "object"},
    },
    "patternProperties": {"^x-": {}},
    "additionalProperties": False,
    "definitions": {
        "command": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "service": {
            "type": "object",
            "propertyNames": {"anyOf": [{"enum": SERVICE_KEYS}, {"pattern": "^x-"}]},
            "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
            "properties": {
                "image": {"type": "string", "minLength": 1},
                "build": {
                    "oneOf": [
                        {"type": "string"},
                        {
                            "type": "object",
                            "properties": {"context": {"type": "string"}, "dockerfile": {"type": "string"}},
                        },
                    ]
                },
                "command": {"$ref": "#/definitions/command"},
                "entrypoint": {"$ref": "#/definitions/command"},
                "env_file": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "environment": {"type": ["object", "array"]},
                "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
                "stop_grace_period": {"type": "string", "pattern": DURATION},
                "depends_on": {
                    "oneOf": [
                        {"type": "array", "items": {"type": "string"}},
                        {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "required": ["condition"],
                                "additionalProperties": False,
                                "properties": {
                                    "condition": {
                                        "enum": ["service_started", "service_healthy", "service_completed_successfully"]
                                    },
                                    "restart": {"type": "boolean"},
                                    "required": {"type": "boolean"},
                                },
                            },
                        },
                    ]
                },
                "healthcheck": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "test": {
                            "oneOf": [
                                {"type": "string"},
                                {
                                    "type": "array",
                                    "minItems": 2,
                                    "items": {"type": "string"},
                                    "prefixItems": [{"enum": ["CMD", "CMD-SHELL"]}],
                                },
                            ]
                        },
                        "interval": {"type": "string", "pattern": DURATION},
                        "timeout": {"type": "string", "pattern": DURATION},
                        "start_period": {"type": "string", "pattern": DURATION},
                        "start_interval": {"type": "string", "pattern": DURATION},
                        "retries": {"type": "integer", "minimum": 1},
                        "disable": {"type": "boolean"},
                    },
                },
                "ports": {"type": "array", "items": {"type": ["string", "object"]}},
                "volumes": {"type": "array", "items": {"type": ["string", "object"]}},
                "tmpfs": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "read_only": {"type": "boolean"},
            },
        },
    },
}


@pytest.fixture(scope="module")
def compose():
    # safe_load resolves the YAML merge keys (<<: *anchor), as Compose does.
    return yaml.safe_load(read(os.path.join(DEPLOY, "compose.yaml")))


def compose_env(service: dict) -> dict[str, str]:
    """The environment a service gets from its env_file entries, then `environment` (which wins)."""
    files = service.get("env_file", [])
    files = [files] if isinstance(files, str) else files
    env: dict[str, str] = {}
    for name in files:
        env.update(env_file(os.path.join(DEPLOY, name)))
    inline = service.get("environment") or {}
    if isinstance(inline, list):
        inline = dict(item.partition("=")[::2] for item in inline)
    env.update({k: str(v) for k, v in inline.items()})
    return env


def test_compose_matches_schema(compose):
    jsonschema.Draft202012Validator(COMPOSE_SCHEMA).validate(compose)


def test_compose_has_postgres_migrate_nginx_and_three_replicas(compose):
    services = compose["services"]
    for name in ["postgres", "migrate", "nginx", *REPLICAS]:
        assert name in services, f"compose.yaml lacks the {name} service"
    # The replicas are the services that run the gateway image's default command (serve).
    image = services["migrate"]["image"]
    replicas = sorted(n for n, s in services.items() if s.get("image") == image and n != "migrate")
    assert replicas == REPLICAS


def test_postgres_is_15_with_a_healthcheck(compose):
    postgres = compose["services"]["postgres"]
    assert re.match(r"^postgres:15([.-]|$)", postgres["image"]), postgres["image"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.split(":")[1] == "/var/lib/postgresql/data" for v in postgres["volumes"]), "data must persist"


def test_replicas_wait_for_healthy_postgres_and_a_completed_migration(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in REPLICAS:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name


def test_replicas_health_check_readyz_and_drain_on_stop(compose):
    for name in REPLICAS:
        service = compose["services"][name]
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and any(part.endswith(":8080/readyz") for part in test), test
        assert "command" not in service, "the image's default command (serve on 8080) is the replica"
        seconds = int(service["stop_grace_period"].rstrip("s"))
        assert seconds >= 30, "SIGTERM drains streams: give it time before SIGKILL"


def test_database_url_comes_from_env_files_with_a_placeholder_password(compose):
    services = compose["services"]
    postgres = compose_env(services["postgres"])
    for name in ["migrate", *REPLICAS]:
        service = services[name]
        inline = service.get("environment") or {}
        assert "GATEWAY_DATABASE_URL" not in str(inline), f"{name}: the URL belongs in an env file"
        url = urlsplit(compose_env(service)["GATEWAY_DATABASE_URL"])
        assert url.scheme in ("postgres", "postgresql")
        assert url.hostname == "postgres" and url.hostname in services
        assert is_placeholder(url.password), f"{name}: the database password must be a placeholder"
        # The gateway logs in with what the postgres container was created with.
        assert url.username == postgres["POSTGRES_USER"]
        assert url.password == postgres["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert is_placeholder(postgres["POSTGRES_PASSWORD"])


def test_gateway_env_holds_only_placeholders_and_known_variables():
    env = env_file(os.path.join(DEPLOY, "gateway.env"))
    assert set(env) <= {"GATEWAY_DATABASE_URL", "GATEWAY_ADMIN_TOKEN", "LOG_LEVEL"} | policy_key_variables()
    assert is_placeholder(env["GATEWAY_ADMIN_TOKEN"])
    for key in policy_key_variables() & set(env):
        assert is_placeholder(env[key]), key


def test_migrate_runs_gateway_migrate_once(compose):
    migrate = compose["services"]["migrate"]
    argv = " ".join(migrate.get("entrypoint", []) + migrate.get("command", []))
    assert re.search(r"gateway migrate --database-url \"\$\$GATEWAY_DATABASE_URL\"", argv), argv
    assert migrate.get("restart") == "no"
    assert "healthcheck" not in migrate or migrate["healthcheck"].get("disable")


def test_nginx_balances_the_three_replicas_on_8080(compose):
    nginx = compose["services"]["nginx"]
    assert "./nginx-lb.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert "8080:8080" in nginx["ports"]
    assert nginx["depends_on"] == {name: {"condition": "service_healthy"} for name in REPLICAS}
    servers = upstream_servers(read(os.path.join(DEPLOY, "nginx-lb.conf")))
    assert [s.split()[0] for s in servers] == [f"{name}:8080" for name in REPLICAS]


# ---------------------------------------------------------------------------------------------------
# Kubernetes


@pytest.fixture(scope="module")
def manifests():
    docs = []
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            for doc in yaml.safe_load_all(read(os.path.join(K8S, name))):
                if doc is not None:
                    docs.append((name, doc))
    return docs


def one(manifests, kind: str, name: str | None = None) -> dict:
    found = [d for _, d in manifests if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_every_manifest_has_api_version_kind_name_and_one_namespace(manifests):
    kinds = set()
    for file, doc in manifests:
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], file
        assert isinstance(doc.get("kind"), str) and doc["kind"], file
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), file
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "llm-gateway", file
        kinds.add(doc["kind"])
    assert {"Namespace", "Secret", "ConfigMap", "Job", "Deployment", "Service"} <= kinds
    expected = {("Deployment", "apps/v1"), ("Job", "batch/v1"), ("Service", "v1"), ("Secret", "v1")}
    assert expected <= {(d["kind"], d["apiVersion"]) for _, d in manifests}


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load(read(os.path.join(K8S, "kustomization.yaml")))["resources"]
    files = sorted(n for n in os.listdir(K8S) if n.endswith(".yaml") and n != "kustomization.yaml")
    assert sorted(listed) == files


def pod_container(spec: dict, name: str) -> dict:
    containers = {c["name"]: c for c in spec["containers"]}
    return containers[name]


def assert_locked_down(pod: dict, container: dict, what: str):
    assert pod["securityContext"]["runAsNonRoot"] is True, what
    assert pod["securityContext"].get("runAsUser", 1) != 0, what
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True, what
    assert sc["allowPrivilegeEscalation"] is False, what
    assert sc["capabilities"]["drop"] == ["ALL"], what


def test_deployment_runs_three_ready_checked_non_root_replicas(manifests):
    deployment = one(manifests, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    container = pod_container(pod, "gateway")
    assert container["image"] and ":" in container["image"] and not container["image"].endswith(":latest")
    args = container["args"]
    assert args[0] == "serve"
    assert {a for a in args if a.startswith("--")} <= SERVE_FLAGS
    assert args[args.index("--config") + 1] == "/etc/gateway/gateway.yaml"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    port = int(args[args.index("--port") + 1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    ready = container["readinessProbe"]["httpGet"]
    live = container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz" and ready["port"] in ("http", port)
    assert live["path"] == "/healthz" and live["port"] in ("http", port)
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    assert_locked_down(pod, container, "deployment")
    # Drain: the grace period covers the preStop pause and the gateway's stream drain.
    assert pod["terminationGracePeriodSeconds"] >= 60


def test_deployment_mounts_the_configmap_at_etc_gateway_and_takes_the_secret(manifests):
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod_container(pod, "gateway")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    policies = mounts["/etc/gateway"]
    assert policies["readOnly"] is True
    assert volumes[policies["name"]]["configMap"]["name"] == one(manifests, "ConfigMap")["metadata"]["name"]
    # The root filesystem is read-only: the data directory and /tmp must be volumes.
    data_dir = container["args"][container["args"].index("--data") + 1]
    assert data_dir in mounts and "/tmp" in mounts
    secret = one(manifests, "Secret")["metadata"]["name"]
    assert container["envFrom"] == [{"secretRef": {"name": secret}}]
    assert "env" not in container or all("GATEWAY_DATABASE_URL" != e["name"] or "valueFrom" in e for e in container["env"])


def test_service_selects_the_deployment_pods(manifests):
    service = one(manifests, "Service")
    deployment = one(manifests, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container = pod_container(deployment["spec"]["template"]["spec"], "gateway")
    names = {p["name"] for p in container["ports"]}
    assert all(p["targetPort"] in names for p in service["spec"]["ports"])


def test_secret_values_are_placeholders_for_known_variables(manifests):
    secret = one(manifests, "Secret")
    values = secret.get("stringData", {})
    assert "data" not in secret, "base64 data hides what is committed; use stringData placeholders"
    assert {"GATEWAY_DATABASE_URL", "GATEWAY_ADMIN_TOKEN"} <= set(values)
    # A misspelt provider variable would silently leave that provider without its key.
    assert set(values) <= {"GATEWAY_DATABASE_URL", "GATEWAY_ADMIN_TOKEN"} | policy_key_variables()
    for key, value in values.items():
        assert isinstance(value, str) and is_placeholder(value), key
    url = urlsplit(values["GATEWAY_DATABASE_URL"])
    assert url.scheme in ("postgres", "postgresql") and is_placeholder(url.password)


def test_configmap_is_the_policies_directory_verbatim(manifests):
    data = one(manifests, "ConfigMap")["data"]
    assert set(data) == {"gateway.yaml", "prices.yaml", "plans.yaml"}
    for name, text in data.items():
        assert text == read(os.path.join(ROOT, "policies", name)), (
            f"deploy/k8s/configmap.yaml's {name} differs from policies/{name}; regenerate it with the "
            "command in the file's header"
        )


def test_migration_job_runs_migrate_with_the_deployment_image(manifests):
    job = one(manifests, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    container = pod["containers"][0]
    deployment = pod_container(one(manifests, "Deployment")["spec"]["template"]["spec"], "gateway")
    assert container["image"] == deployment["image"]
    assert container["args"] == ["migrate", "--database-url", "$(GATEWAY_DATABASE_URL)"]
    # $(VAR) in args is expanded only from variables the container declares.
    env = {e["name"]: e for e in container["env"]}
    ref = env["GATEWAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": one(manifests, "Secret")["metadata"]["name"], "key": "GATEWAY_DATABASE_URL"}
    assert_locked_down(pod, container, "migration job")


def test_manifests_pass_the_kubernetes_schemas_when_kubernetes_validate_is_installed():
    kv = pytest.importorskip("kubernetes_validate")
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            for doc in yaml.safe_load_all(read(os.path.join(K8S, name))):
                kv.validate(doc, "1.30.0", strict=True)


# ---------------------------------------------------------------------------------------------------
# systemd


def unit(path: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value): keys such as EnvironmentFile repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in read(path).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path}: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def test_template_unit_runs_serve_on_the_instance_port_with_the_database_from_a_file():
    path = os.path.join(DEPLOY, "gateway@.service")
    sections = unit(path)
    assert {"Unit", "Service", "Install"} <= set(sections)
    service = sections["Service"]
    (exec_start,) = values(service, "ExecStart")
    argv = shlex.split(exec_start)
    assert argv[:2] == [GATEWAY_BINARY, "serve"]
    assert {a for a in argv if a.startswith("--")} <= SERVE_FLAGS
    assert "%i" in argv[argv.index("--port") + 1], "each instance listens on its own port"
    assert argv[argv.index("--config") + 1] == "/etc/gateway/gateway.yaml"
    assert "--database-url" not in argv, "the URL comes from the environment file, not the command line"
    assert "%i" in argv[argv.index("--data") + 1], "replicas must not share a data directory"
    assert "/etc/gateway/database.env" in values(service, "EnvironmentFile"), "required, so no leading '-'"
    settings = " ".join(v for section in sections.values() for _, v in section)
    assert "postgres://" not in settings and "GATEWAY_DATABASE_URL=" not in settings
    assert any("GATEWAY_DATABASE_URL" in v for v in values(service, "ExecStartPre"))
    assert values(sections["Install"], "WantedBy") == ["multi-user.target"]


def test_template_unit_keeps_the_single_replica_units_hardening_and_drain():
    single = dict(unit(os.path.join(DEPLOY, "gateway.service"))["Service"])
    template = dict(unit(os.path.join(DEPLOY, "gateway@.service"))["Service"])
    for key in ["User", "Group", "KillSignal", "TimeoutStopSec", "Restart", "LimitNOFILE", "NoNewPrivileges",
                "ProtectSystem", "PrivateTmp"]:
        assert template.get(key) == single[key], key
    assert template["KillSignal"] == "SIGTERM"


def test_migrate_unit_is_a_oneshot_that_the_template_orders_after():
    sections = unit(os.path.join(DEPLOY, "gateway-migrate.service"))
    service = sections["Service"]
    assert values(service, "Type") == ["oneshot"]
    argv = shlex.split(values(service, "ExecStart")[0])
    assert argv == [GATEWAY_BINARY, "migrate", "--database-url", "${GATEWAY_DATABASE_URL}"]
    assert values(service, "EnvironmentFile") == ["/etc/gateway/database.env"]
    template = unit(os.path.join(DEPLOY, "gateway@.service"))["Unit"]
    assert "gateway-migrate.service" in " ".join(values(template, "After"))


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units():
    with tempfile.TemporaryDirectory() as tmp:
        for name in ["gateway@.service", "gateway-migrate.service"]:
            # verify insists that the binary exists: point it at one that does.
            text = read(os.path.join(DEPLOY, name)).replace(GATEWAY_BINARY, "/bin/true")
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        out = subprocess.run(
            [SYSTEMD_ANALYZE, "verify", os.path.join(tmp, "gateway@8081.service"),
             os.path.join(tmp, "gateway-migrate.service")],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "Unknown" not in out.stderr and "ignoring" not in out.stderr, out.stderr


# ---------------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped."""
    out, pending = [], ""
    for line in read(path).splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        pending += stripped
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    assert pending == "", "the Dockerfile ends inside a continued line"
    return out


def test_dockerfile_builds_in_one_stage_and_runs_non_root_in_another():
    steps = dockerfile_instructions(os.path.join(DEPLOY, "Dockerfile"))
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: the toolchain stays out of the runtime image"
    build, final = steps[froms[0]:froms[-1]], steps[froms[-1]:]
    build_runs = " ".join(arg for word, arg in build if word == "RUN")
    assert "swift build -c release --product gateway" in build_runs
    assert ".resources" in build_runs, "the tokenizer vocabularies are resources beside the binary"
    final_words = [word for word, _ in final]
    users = [arg for word, arg in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime stage must not run as root"
    assert users[-1].split(":")[0].isdigit(), "numeric, so Kubernetes' runAsNonRoot can check it"
    (health,) = [arg for word, arg in final if word == "HEALTHCHECK"]
    assert "/readyz" in health
    assert ("EXPOSE", "8080") in final
    assert any(word == "COPY" and arg.split()[-2:] == ["policies/", "/etc/gateway/"] for word, arg in final)
    assert any(word == "COPY" and arg.startswith("--from=") for word, arg in final)
    (entrypoint,) = [arg for word, arg in final if word == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint) == [GATEWAY_BINARY]
    (cmd,) = [arg for word, arg in final if word == "CMD"]
    argv = yaml.safe_load(cmd)
    assert argv[0] == "serve" and {a for a in argv if a.startswith("--")} <= SERVE_FLAGS
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--port") + 1] == "8080"
    assert "STOPSIGNAL" not in final_words or ("STOPSIGNAL", "SIGTERM") in final


def test_dockerignore_keeps_build_outputs_out_of_the_context():
    patterns = {line.strip() for line in read(os.path.join(DEPLOY, "Dockerfile.dockerignore")).splitlines()}
    assert {".build", ".venv", ".git"} <= patterns


# ---------------------------------------------------------------------------------------------------
# nginx-lb.conf


def test_nginx_conf_streams_unbuffered_and_fails_over():
    conf = re.sub(r"#.*", "", read(os.path.join(DEPLOY, "nginx-lb.conf")))  # directives, not comments
    directives = {m.group(1): m.group(2) for m in re.finditer(r"^\s*(\w+)\s+([^;{]*);", conf, re.M)}
    assert directives["proxy_http_version"] == "1.1"
    assert directives["proxy_buffering"] == "off"
    assert directives["proxy_request_buffering"] == "off"
    assert re.search(r'proxy_set_header\s+Connection\s+"";', conf), "upstream keepalive needs it"
    assert re.search(r"upstream\s+\w+\s*{[^}]*\bkeepalive\s+\d+;", conf)
    servers = upstream_servers(conf)
    assert len(servers) == 3 and all("max_fails=" in s and "fail_timeout=" in s for s in servers)
    assert directives["proxy_next_upstream"].split() == ["error", "timeout"]
    assert "non_idempotent" not in conf, "a POST that reached a replica must never be sent to another"
    # nginx must outwait the gateway's own provider timeouts, so the gateway ends (and meters) a slow stream.
    gateway = yaml.safe_load(read(os.path.join(ROOT, "policies", "gateway.yaml")))
    longest_ms = max(
        max(p.get("timeouts", {}).get("first_byte_ms", 0), p.get("timeouts", {}).get("idle_read_ms", 0))
        for p in gateway["providers"]
    )
    assert int(directives["proxy_read_timeout"].rstrip("s")) * 1000 > longest_ms
    body_mb = int(directives["client_max_body_size"].rstrip("m"))
    assert body_mb * 1024 * 1024 > gateway["server"]["max_request_body_bytes"]
    assert "$upstream_http_x_request_id" in conf


def nginx_config(tmp: str, listen: int, upstreams: list[int], master: bool) -> str:
    """nginx-lb.conf with the replicas and the listener on loopback ports, wrapped in a main file."""
    conf = read(os.path.join(DEPLOY, "nginx-lb.conf"))
    for name, port in zip(REPLICAS, upstreams):
        conf = conf.replace(f"server {name}:8080", f"server 127.0.0.1:{port}")
    conf = re.sub(r"listen\s+8080;", f"listen 127.0.0.1:{listen};", conf)
    with open(os.path.join(tmp, "lb.conf"), "w") as f:
        f.write(conf)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};" for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    )
    main = os.path.join(tmp, "nginx.conf")
    with open(main, "w") as f:
        f.write(
            ("" if master else "daemon off;\nmaster_process off;\n")
            + f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log info;\n"
            + "events { worker_connections 64; }\n"
            + f"http {{\n{temp_paths}\n    include {tmp}/lb.conf;\n}}\n"
        )
    return main


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_accepts_the_configuration():
    with tempfile.TemporaryDirectory() as tmp:
        main = nginx_config(tmp, free_port(), [free_port() for _ in REPLICAS], master=True)
        out = subprocess.run(
            [NGINX, "-t", "-p", tmp, "-c", main, "-e", os.path.join(tmp, "error.log")],
            capture_output=True, text=True, timeout=30,
        )
        assert out.returncode == 0, out.stderr


BULK_BYTES = 64 * 1024 * 1024


class StubReplica(http.server.ThreadingHTTPServer):
    """Answers like a replica: a streamed response held open after its first event, a request id, and
    POSTs that die before answering (a replica crashing mid-request)."""

    daemon_threads = True

    def __init__(self, name: str):
        self.name = name
        self.release = threading.Event()
        self.gets = 0
        self.posts = 0
        self.bulk_sent = 0
        super().__init__(("127.0.0.1", 0), StubHandler)


class StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        server: StubReplica = self.server
        server.gets += 1
        self.send_response(200)
        self.send_header("X-Request-Id", f"req-{server.name}")
        if self.path == "/bulk":
            # A large response: how much of it the replica manages to write shows whether nginx reads
            # ahead of a client that does not read (buffering) or passes the back-pressure on.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            self.send_header("Content-Length", str(BULK_BYTES))
            self.end_headers()
            piece = b"x" * 65536
            try:
                while server.bulk_sent < BULK_BYTES:
                    self.wfile.write(piece)
                    server.bulk_sent += len(piece)
            except OSError:
                self.close_connection = True
        elif self.path == "/stream":
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(b"data: first\n\n")
            # Held until the client has seen the first event: a buffering proxy would deliver nothing.
            server.release.wait(10)
            self.chunk(b"data: last\n\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            body = server.name.encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self):
        self.server.posts += 1
        self.close_connection = True  # no answer: nginx sees the replica die mid-request


def raw_get(port: int, path: str, timeout: float = 5) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n".encode())
    return sock


def read_until(sock: socket.socket, marker: bytes, seen: bytes = b"") -> bytes:
    while marker not in seen:
        data = sock.recv(4096)
        if not data:
            break
        seen += data
    return seen


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_streams_unbuffered_skips_a_dead_replica_and_never_resends_a_post():
    stubs = [StubReplica("a"), StubReplica("b")]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in stubs]
    for t in threads:
        t.start()
    dead = free_port()  # nothing listens there: a replica that is down
    listen = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        upstreams = [stubs[0].server_address[1], dead, stubs[1].server_address[1]]
        main = nginx_config(tmp, listen, upstreams, master=False)
        proc = subprocess.Popen(
            [NGINX, "-p", tmp, "-c", main, "-e", os.path.join(tmp, "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read()
                    assert time.time() < deadline, "nginx did not start"
                    time.sleep(0.05)

            # A stream's first event reaches the client while the replica still holds the response open.
            sock = raw_get(listen, "/stream")
            try:
                head = read_until(sock, b"data: first")
                assert b"data: first" in head, head
                assert b"200 OK" in head.split(b"\r\n", 1)[0]
                assert re.search(rb"(?i)x-request-id: req-[ab]\r\n", head), "the replica's request id passes"
                assert b"data: last" not in head
            finally:
                for s in stubs:
                    s.release.set()
            rest = read_until(sock, b"0\r\n\r\n", head)
            sock.close()
            assert b"data: last" in rest

            # A client that stops reading holds its replica back instead of nginx buffering the reply:
            # the gateway sees a slow or gone client, and nginx does not spool streams to disk.
            for s in stubs:
                s.bulk_sent = 0
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.settimeout(5)
            sock.connect(("127.0.0.1", listen))
            sock.sendall(b"GET /bulk HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(1.5)
            sent = sum(s.bulk_sent for s in stubs)
            sock.close()
            assert 0 < sent < BULK_BYTES // 2, f"the replica wrote {sent} bytes to a client that reads none"

            # Requests keep succeeding with one of the three replicas down: nginx tries another.
            for _ in range(9):
                sock = raw_get(listen, "/ping")
                reply = read_until(sock, b"\r\n\r\n")
                reply = read_until(sock, b"<never>", reply)
                sock.close()
                assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
                assert reply.endswith(b"a") or reply.endswith(b"b")
            assert stubs[0].gets > 0 and stubs[1].gets > 0, "both live replicas take requests"

            # A POST whose replica dies mid-request is answered 502, not run again elsewhere (and billed twice).
            sock = socket.create_connection(("127.0.0.1", listen), timeout=5)
            body = b'{"model":"mock-gpt-4o-mini"}'
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            reply = read_until(sock, b"<never>")
            sock.close()
            assert reply.startswith(b"HTTP/1.1 502"), reply[:200]
            assert stubs[0].posts + stubs[1].posts == 1
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            for s in stubs:
                s.shutdown()
                s.server_close()
