#!/usr/bin/env bash
# Install (Debian packages) what `make test`, `make images` and `make bench` run, and start the
# real services the tests and a deployment-like setup need: PostgreSQL, Redis and a Docker
# engine (plus make, debootstrap for the local images, Chromium and fonts for the browser tests,
# docker-compose to check the compose file, wrk for the benchmark). Idempotent: safe to run
# again.
#
#   scripts/services.sh            install what is missing, then start everything
#   scripts/services.sh --no-docker   skip the Docker engine
#
# Creates the PostgreSQL role/database named by TEST_DATABASE_URL's defaults
# (trainyard/trainyard on 127.0.0.1:5432, databases trainyard and trainyard_test).
set -euo pipefail

want_docker=1
[ "${1:-}" = "--no-docker" ] && want_docker=0

# Non-root users on Debian lack the sbin folders on PATH (debootstrap, dockerd live there).
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Every program the project runs that a bare Debian 12 (Python and sudo) lacks, as
# CHECK:PACKAGE, where CHECK is a command (found on PATH) or a path (exists). The Makefile,
# scripts/, .ci/run, tests and bench call nothing else outside Debian's required packages, the
# virtualenv and Python: tests/test_fresh_machine.py fails when one of them does.
provides=(
  make:make                                  # the Makefile (.ci/run, make run / make test)
  pg_ctlcluster:postgresql                   # the database, started below
  pg_lsclusters:postgresql
  psql:postgresql-client                     # here and bench/: create roles and databases
  pg_isready:postgresql-client
  redis-server:redis-server                  # the broker (and devstack on Python 3.13+)
  redis-cli:redis-tools
  debootstrap:debootstrap                    # scripts/build-images.sh: the local base image
  chromium:chromium                          # the dashboard's browser tests (Playwright)
  # Korean and emoji in the dashboard's screenshots.
  /usr/share/fonts/opentype/noto:fonts-noto-cjk
  /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf:fonts-noto-color-emoji
  wrk:wrk                                    # make bench
  git:git                                    # tests/deploy: the app image's source hash
)
docker_provides=(
  dockerd:docker.io                          # the engine, and the docker CLI
  docker:docker.io
  docker-compose:docker-compose              # checks docker-compose.yml (or `docker compose`)
)
[ "$want_docker" = 1 ] && provides+=("${docker_provides[@]}")

missing=()
for entry in "${provides[@]}"; do
  check=${entry%%:*} package=${entry#*:}
  case "$check" in
    /*) [ -e "$check" ] && continue ;;
    docker-compose) docker compose version >/dev/null 2>&1 && continue ;&
    *) command -v "$check" >/dev/null && continue ;;
  esac
  [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
done
# `make venv` runs `python3 -m venv`: Debian's python3 needs python3-venv for it (ensurepip).
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "services: installing ${missing[*]}"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}"
fi

# --- PostgreSQL -------------------------------------------------------------
pg_version=$(ls /etc/postgresql | sort -n | tail -n 1)
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  as_root pg_ctlcluster "$pg_version" main start
fi
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -q && break
  sleep 0.5
done
psql_admin() { as_root su postgres -c "psql -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
if [ "$(psql_admin "select 1 from pg_roles where rolname='trainyard'")" != 1 ]; then
  psql_admin "create role trainyard login password 'trainyard' createdb"
fi
for db in trainyard trainyard_test; do
  if [ "$(psql_admin "select 1 from pg_database where datname='$db'")" != 1 ]; then
    psql_admin "create database $db owner trainyard"
  fi
done
echo "services: postgresql $pg_version up on 127.0.0.1:5432"

# --- Redis --------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
echo "services: redis up on 127.0.0.1:6379"

# --- Docker engine --------------------------------------------------------------
if [ "$want_docker" = 1 ]; then
  if ! docker info >/dev/null 2>&1; then
    (as_root dockerd >/var/log/trainyard-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  if docker info >/dev/null 2>&1; then
    echo "services: docker engine up"
  else
    echo "services: docker engine did not start (see /var/log/trainyard-dockerd.log)" >&2
    exit 1
  fi
fi
