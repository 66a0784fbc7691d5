"""docker-compose.yml: the services a deployment needs, wired the way docs/deployment.md says.

The structure is checked by parsing the YAML (always); `docker compose config` (or Debian's
`docker-compose`) validates it against the Compose schema when one is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
APP_SERVICES = {"migrate", "api", "worker-cpu", "worker-gpu", "flower"}
DATA = "${TRAINYARD_DATA:-/srv/trainyard/data}"
REDIS_PASSWORD = "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"
POSTGRES_PASSWORD = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}"
#: The secrets .env must set (.env.example leaves them empty): compose has no default for any.
SECRETS = {
    "POSTGRES_PASSWORD": "pg-pw-1",
    "REDIS_PASSWORD": "redis-pw-2",
    "API_TOKEN": "api-token-3",
    "FLOWER_BASIC_AUTH": "admin:flower-pw-4",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts.append((source, target))
    return mounts


def test_services_and_their_order(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    assert "beat" not in services and "sweep" not in services  # the workers' supervisors sweep
    depends = {name: s.get("depends_on", {}) for name, s in services.items()}
    assert depends["migrate"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker-cpu", "worker-gpu"):
        assert depends[name]["migrate"] == {"condition": "service_completed_successfully"}
        assert depends[name]["redis"] == {"condition": "service_healthy"}
    assert depends["flower"]["redis"] == {"condition": "service_healthy"}
    assert services["migrate"]["command"] == ["trainyard", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis", "api", "worker-cpu", "worker-gpu", "flower"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has a healthcheck"


def test_service_images_default_to_the_official_ones(compose: dict[str, Any]) -> None:
    """POSTGRES_IMAGE / REDIS_IMAGE switch to the images `make images` builds locally
    (tests/deploy/test_compose_e2e.py runs the stack on those)."""
    services = _services(compose)
    assert services["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:16}"
    assert services["redis"]["image"] == "${REDIS_IMAGE:-redis:7}"
    # Both images keep their data at the official images' paths.
    assert ("pgdata", "/var/lib/postgresql/data") in _mounts(services["postgres"])
    assert ("redisdata", "/data") in _mounts(services["redis"])


def test_redis_persists_and_never_evicts(compose: dict[str, Any]) -> None:
    command = " ".join(_services(compose)["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert ("redisdata", "/data") in _mounts(_services(compose)["redis"])


def test_app_services_share_the_image_and_the_environment(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name in APP_SERVICES:
        service = services[name]
        assert service["image"] == "${TRAINYARD_IMAGE:-trainyard/app:latest}"
        assert service["build"]["args"]["BASE_IMAGE"].startswith("${BASE_IMAGE")
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@${POSTGRES_HOST:-postgres}:5432/" in env["DATABASE_URL"]
        assert env["BROKER_URL"] == f"redis://:{REDIS_PASSWORD}@${{REDIS_HOST:-redis}}:6379/0"
        assert env["OUTPUT_ROOT"] == f"{DATA}/outputs"
        assert env["DATASET_ROOT"] == f"{DATA}/datasets"
        assert env["TRAINYARD_HOME"] == DATA  # drain flags: visible to every service
        assert env["LOG_FORMAT"] == "${LOG_FORMAT:-json}"
    assert "API_TOKEN" in services["api"]["environment"]


def test_outputs_at_the_same_path_as_on_the_host(compose: dict[str, Any]) -> None:
    """Workers bind-mount job folders into training containers through the host's engine,
    so the data must sit at its host path inside the api and every worker."""
    services = _services(compose)
    for name in ("api", "worker-cpu", "worker-gpu", "migrate"):
        assert ("trainyard-data", DATA) in _mounts(services[name]), name
    volume = compose["volumes"]["trainyard-data"]
    assert volume["driver_opts"] == {"type": "none", "o": "bind", "device": DATA}


def test_only_workers_get_the_docker_socket(compose: dict[str, Any]) -> None:
    sock = ("/var/run/docker.sock", "/var/run/docker.sock")
    for name, service in _services(compose).items():
        has_sock = sock in _mounts(service)
        assert has_sock == name.startswith("worker-"), name
    for name in ("worker-cpu", "worker-gpu"):
        worker = _services(compose)[name]
        assert worker["group_add"] == ["${DOCKER_GID:-999}"]
        assert worker["command"] == ["trainyard", "worker"]
        assert worker["environment"]["WORKER_RUNTIME"] == "docker"
        assert worker["environment"]["NODE_NAME"]


def test_gpu_worker_is_a_profile_with_a_gpu_reservation(compose: dict[str, Any]) -> None:
    services = _services(compose)
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["environment"]["NODE_GPUS"] == "${NODE_GPUS:-0}"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    cpu = services["worker-cpu"]
    assert "profiles" not in cpu and cpu["environment"]["NODE_GPUS"] == ""
    assert cpu["environment"]["NODE_NAME"] != gpu["environment"]["NODE_NAME"]


def test_every_secret_is_required_and_has_no_default(compose: dict[str, Any]) -> None:
    """No silent fallback: the file does not render without each secret (issue 10, item 5)."""
    services = _services(compose)
    text = COMPOSE_FILE.read_text()
    for name in SECRETS:
        assert f"${{{name}:-" not in text and f"${{{name}-" not in text, name
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == POSTGRES_PASSWORD
    # Redis asks every client for the password...
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == REDIS_PASSWORD
    assert redis["environment"]["REDISCLI_AUTH"] == REDIS_PASSWORD  # its own healthcheck
    # ... and every client has it: the API, the workers and Flower all use BROKER_URL.
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["BROKER_URL"].startswith(f"redis://:{REDIS_PASSWORD}@"), name
        assert f":{POSTGRES_PASSWORD}@" in env["DATABASE_URL"], name
    assert services["api"]["environment"]["API_TOKEN"].startswith("${API_TOKEN:?")
    # The API listens on 0.0.0.0 through `trainyard api`, which refuses that without a token.
    assert services["api"]["command"][:4] == ["trainyard", "api", "--bind", "0.0.0.0:8000"]
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert {name: example[name] for name in SECRETS} == dict.fromkeys(SECRETS, "")


def test_flower_needs_basic_auth(compose: dict[str, Any]) -> None:
    flower = _services(compose)["flower"]
    assert flower["command"][:4] == ["celery", "-A", "workers.celery_app:celery_app", "flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["ports"] == ["${FLOWER_BIND:-127.0.0.1}:${FLOWER_PORT:-5555}:5555"]


def test_env_example_lists_every_variable_the_compose_file_uses() -> None:
    # `$${NAME}` is an escaped `$`: a variable of the container's shell, not of compose.
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    listed = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used - listed == set(), "variables missing from .env.example"


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose / docker-compose")
def test_compose_validates_the_file(tmp_path: Path) -> None:
    command = [*_compose_command(), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    env_file = tmp_path / ".env"
    filled = ENV_EXAMPLE.read_text()
    for name, value in SECRETS.items():
        filled = filled.replace(f"\n{name}=\n", f"\n{name}={value}\n")
    env_file.write_text(filled)

    def config(*args: str) -> str:
        result = subprocess.run(
            [*command, "--env-file", str(env_file), *args, "config"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    default = yaml.safe_load(config())
    assert {"postgres", "redis", *APP_SERVICES} - {"worker-gpu"} <= set(default["services"])
    if command[-1] == "compose":  # Compose v2 leaves inactive profiles out; 1.29 lists them
        assert "worker-gpu" not in default["services"]
    with_gpu = yaml.safe_load(config("--profile", "gpu"))
    assert "worker-gpu" in with_gpu["services"]
    worker = with_gpu["services"]["worker-gpu"]
    assert worker["environment"]["OUTPUT_ROOT"] == "/srv/trainyard/data/outputs"
    assert worker["environment"]["DATABASE_URL"] == (
        "postgresql+psycopg://trainyard:pg-pw-1@postgres:5432/trainyard"
    )
    assert worker["environment"]["BROKER_URL"] == "redis://:redis-pw-2@redis:6379/0"
    assert "API_TOKEN" not in worker["environment"]  # only the API needs it
    assert default["services"]["api"]["environment"]["API_TOKEN"] == "api-token-3"
    assert default["services"]["flower"]["environment"]["BROKER_URL"] == (
        "redis://:redis-pw-2@redis:6379/0"
    )
    assert "--requirepass" in default["services"]["redis"]["command"]
    assert any(
        m.get("target") == "/srv/trainyard/data" and m.get("source") == "trainyard-data"
        for m in worker["volumes"]
        if isinstance(m, dict)
    )
    # A GPU node on another host: the same file, the central host's address.
    env_file.write_text(
        filled.replace("POSTGRES_HOST=postgres", "POSTGRES_HOST=10.0.0.5")
        .replace("REDIS_HOST=redis", "REDIS_HOST=10.0.0.5")
    )
    remote = yaml.safe_load(config("--profile", "gpu"))["services"]["worker-gpu"]["environment"]
    assert remote["DATABASE_URL"].endswith("@10.0.0.5:5432/trainyard")
    assert remote["BROKER_URL"] == "redis://:redis-pw-2@10.0.0.5:6379/0"
    # Without any one of the secrets (empty, as in .env.example) the file refuses to render.
    for name in SECRETS:
        env_file.write_text(filled.replace(f"\n{name}={SECRETS[name]}\n", f"\n{name}=\n"))
        result = subprocess.run(
            [*command, "--env-file", str(env_file), "config"], capture_output=True, text=True
        )
        assert result.returncode != 0 and name in result.stderr, (name, result.stderr)
