#!/usr/bin/env bash
# Install (Debian packages) and start the real services the tests and a deployment-like
# setup need: PostgreSQL, Redis and a Docker engine (plus Chromium and fonts for the browser
# tests, and docker-compose to check the compose file). Idempotent: safe to run again.
#
#   scripts/services.sh            install what is missing, then start everything
#   scripts/services.sh --no-docker   skip the Docker engine
#
# Creates the PostgreSQL role/database named by TEST_DATABASE_URL's defaults
# (trainyard/trainyard on 127.0.0.1:5432, databases trainyard and trainyard_test).
set -euo pipefail

want_docker=1
[ "${1:-}" = "--no-docker" ] && want_docker=0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ "$want_docker" = 1 ] && ! command -v dockerd >/dev/null; then missing+=(docker.io); fi
if [ "$want_docker" = 1 ] && ! command -v docker-compose >/dev/null \
   && ! docker compose version >/dev/null 2>&1; then missing+=(docker-compose); fi
# The dashboard's end-to-end tests drive Debian's Chromium; Korean and emoji need these fonts.
command -v chromium >/dev/null || missing+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || missing+=(fonts-noto-cjk)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
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
