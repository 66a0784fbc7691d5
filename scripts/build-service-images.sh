#!/usr/bin/env bash
# Build the PostgreSQL and Redis images docker-compose.yml runs where postgres:16 and redis:7
# cannot be pulled (POSTGRES_IMAGE / REDIS_IMAGE, docs/deployment.md), without any container
# registry: Debian bookworm's own packages (postgresql-15, redis-server) installed on the
# locally bootstrapped base image (images/postgres, images/redis). scripts/build-images.sh
# runs this after the base image exists; `make images` runs both.
#
#   trainyard/postgres:15   initdb's an empty PGDATA from POSTGRES_USER/PASSWORD/DB
#   trainyard/redis:7       redis-server with the command line compose passes
#
# Usage: scripts/build-service-images.sh [--force]
#
# Idempotent: each image carries a label (trainyard.service.hash) with a hash of its folder
# under images/ and the base image id, and is rebuilt only when that changes.
#
# The package installs run inside `docker build`, so the build container must reach the
# Debian mirror in the base image's /etc/apt/sources.list (the one debootstrap used).
#
# Environment:
#   TRAINYARD_BASE_IMAGE       base image tag     (default trainyard/base:bookworm)
#   TRAINYARD_POSTGRES_IMAGE   PostgreSQL tag     (default trainyard/postgres:15)
#   TRAINYARD_REDIS_IMAGE      Redis tag          (default trainyard/redis:7)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="${TRAINYARD_BASE_IMAGE:-trainyard/base:bookworm}"
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-service-images: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
log() { echo "build-service-images: $*"; }
die() { echo "build-service-images: ERROR: $*" >&2; exit 1; }

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
  || die "$BASE_IMAGE is missing: run scripts/build-images.sh first"
base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")

# build_service TAG FOLDER: docker build images/FOLDER unless TAG already carries its hash.
build_service() {
  local tag=$1 context="$REPO_ROOT/images/$2" want have t0 out
  want=$( { (cd "$context" && find . -type f | LC_ALL=C sort | xargs sha256sum); echo "$base_id"; } \
    | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{index .Config.Labels "trainyard.service.hash"}}' "$tag" 2>/dev/null || true)
  if [ "$force" = 0 ] && [ "$have" = "$want" ]; then
    log "$tag is up to date, keeping it (use --force to rebuild)"
    return
  fi
  log "building $tag from images/$2 on $BASE_IMAGE"
  t0=$SECONDS
  if ! out=$(docker build --pull=false --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --label "trainyard.service.hash=$want" -t "$tag" "$context" 2>&1); then
    echo "$out" | tail -n 30 >&2
    die "docker build of $tag failed (does the build container reach the Debian mirror?)"
  fi
  log "  built in $((SECONDS - t0))s"
}

build_service "${TRAINYARD_POSTGRES_IMAGE:-trainyard/postgres:15}" postgres
build_service "${TRAINYARD_REDIS_IMAGE:-trainyard/redis:7}" redis
