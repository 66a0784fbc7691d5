#!/usr/bin/env bash
# Build the trainyard app image (API, worker, Flower: the repo's Dockerfile) without any
# package index inside `docker build`:
#
#   1. the host's pip downloads wheels for the image's Python into build/wheels
#      (binary wheels only, for the image's Python version and the manylinux platforms its
#      glibc runs), plus pip, setuptools and wheel;
#   2. `docker build --build-arg BASE_IMAGE=...` installs from there with --no-index.
#
# Why: a build container may not reach the index (no network, or a TLS-intercepting proxy
# whose CA only the host trusts); the host's pip already works.
#
# Environment:
#   BASE_IMAGE            default trainyard/base:bookworm (scripts/build-images.sh builds it)
#   TRAINYARD_APP_IMAGE   default trainyard/app:latest
#   PYTHON                the host Python whose pip downloads (default: .venv/bin/python, python3)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-trainyard/base:bookworm}"
APP_IMAGE="${TRAINYARD_APP_IMAGE:-trainyard/app:latest}"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x "$REPO_ROOT/.venv/bin/python" ]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
log() { echo "build-app-image: $*"; }
die() { echo "build-app-image: ERROR: $*" >&2; exit 1; }

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
  || [ "$BASE_IMAGE" != trainyard/base:bookworm ] \
  || bash "$REPO_ROOT/scripts/build-images.sh"
t0=$SECONDS

# The image's Python (its full version: markers like python_full_version < "3.11.3" pick
# dependencies) and glibc decide which wheels fit.
read -r py_ver glibc arch < <(docker run --rm --entrypoint python3 "$BASE_IMAGE" -c \
  'import platform, sys; print("%d.%d.%d" % sys.version_info[:3], platform.libc_ver()[1] or "2.17", platform.machine())') \
  || die "cannot run python3 in $BASE_IMAGE"
glibc_minor=${glibc#2.}
platforms=(--platform "manylinux2014_$arch")
for minor in $(seq 17 "$glibc_minor"); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
log "base $BASE_IMAGE: Python $py_ver, glibc $glibc, $arch"

wheels="$REPO_ROOT/build/wheels"
rm -rf "$wheels" && mkdir -p "$wheels"
"$PYTHON" - "$REPO_ROOT/pyproject.toml" > "$REPO_ROOT/build/requirements.txt" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as handle:
    print("\n".join(tomllib.load(handle)["project"]["dependencies"]))
PY
download() {
  "$PYTHON" -m pip download --quiet --dest "$wheels" --only-binary=:all: \
    --python-version "$py_ver" --implementation cp "${platforms[@]}" "$@" \
    || die "pip download failed (every dependency needs a wheel for Python $py_ver)"
}
log "downloading wheels into build/wheels"
download -r "$REPO_ROOT/build/requirements.txt" pip setuptools wheel
# pip evaluates some markers (python_full_version, ...) with the host's Python, not the
# image's: let the image's Python resolve against the folder and fetch what it still misses.
pip_whl="/build/wheels/$(cd "$wheels" && ls pip-*.whl | head -n 1)"
for _ in 1 2 3 4 5; do
  out=$(docker run --rm --network none -v "$REPO_ROOT/build:/build:ro" --entrypoint python3 \
      "$BASE_IMAGE" "$pip_whl/pip" install --dry-run --ignore-installed --no-index \
      --find-links /build/wheels --target /tmp/none -r /build/requirements.txt 2>&1) && break
  missing=$(echo "$out" | sed -n 's/.*No matching distribution found for \([^ ]*\).*/\1/p' | head -n 1)
  [ -n "$missing" ] || { echo "$out" | tail -n 20 >&2; die "the image's pip cannot resolve"; }
  log "  the image's Python also needs $missing"
  download "$missing"
done
log "  $(ls "$wheels" | wc -l) wheels, $(du -sh "$wheels" | cut -f1) in $((SECONDS - t0))s"

t1=$SECONDS
log "docker build $APP_IMAGE (BASE_IMAGE=$BASE_IMAGE)"
if ! docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$APP_IMAGE" "$REPO_ROOT" \
    >"$REPO_ROOT/build/docker-build.log" 2>&1; then
  tail -n 30 "$REPO_ROOT/build/docker-build.log" >&2
  die "docker build failed (full log: build/docker-build.log)"
fi
log "  built in $((SECONDS - t1))s"
docker run --rm "$APP_IMAGE" trainyard --help >/dev/null || die "$APP_IMAGE: trainyard does not run"
log "done in $((SECONDS - t0))s: $APP_IMAGE"
