#!/usr/bin/env bash
# Build the local Docker images trainyard needs, without any container registry:
#
#   trainyard/base:bookworm    a minimal Debian bookworm + python3 root filesystem, made with
#                              debootstrap from the Debian package mirror and `docker import`ed
#   trainyard/trainer:latest   the reference trainer (trainer/Dockerfile) on top of that base
#   trainyard/example-pytorch:latest
#                              the PyTorch example (examples/pytorch): torch's CPU wheel and its
#                              dependencies are downloaded on the host into a wheelhouse
#                              (examples/pytorch/wheels), then `docker build --network none`
#   trainyard/postgres:15,     compose's PostgreSQL and Redis from Debian packages on that base
#   trainyard/redis:7          (scripts/build-service-images.sh, run at the end)
#
# Usage: scripts/build-images.sh [--force] [--force-trainer] [--no-examples]
#   --force          rebuild every image even when it exists
#   --force-trainer  rebuild only the trainer image (and the example built on the same helper)
#   --no-examples    skip the PyTorch example image
#
# Idempotent: an image that exists is kept. The trainer image carries a label with a hash of
# trainer/Dockerfile, .dockerignore, train.py and trainyard_trainer/*.py + the base image id,
# and is rebuilt when that changes (so a stale trainer is never used after editing them). The
# example image carries the same kind of label (its Dockerfile, requirements.txt, train.py,
# the helper's sources, the base image id).
#
# Environment:
#   TRAINYARD_DEBIAN_MIRROR   Debian mirror URL (default: the first bookworm `debian` URI in
#                             /etc/apt/sources.list*, else http://deb.debian.org/debian)
#   TRAINYARD_BASE_IMAGE      base image tag    (default trainyard/base:bookworm)
#   TRAINYARD_TRAINER_IMAGE   trainer image tag (default trainyard/trainer:latest)
#   TRAINYARD_EXAMPLE_PYTORCH_IMAGE  the PyTorch example's tag (default trainyard/example-pytorch:latest)
#   TRAINYARD_TORCH_INDEX_URL where the host's pip downloads torch from (default: pip's own
#                             configuration); it must offer the CPU build, e.g.
#                             https://download.pytorch.org/whl/cpu
#   TRAINYARD_CACHE_DIR       where downloaded .debs are kept between builds
#                             (default ${XDG_CACHE_HOME:-$HOME/.cache}/trainyard/debootstrap)
set -euo pipefail

BASE_IMAGE="${TRAINYARD_BASE_IMAGE:-trainyard/base:bookworm}"
TRAINER_IMAGE="${TRAINYARD_TRAINER_IMAGE:-trainyard/trainer:latest}"
SUITE=bookworm
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRAINER_DIR="$REPO_ROOT/trainer"
EXAMPLE_IMAGE="${TRAINYARD_EXAMPLE_PYTORCH_IMAGE:-trainyard/example-pytorch:latest}"
EXAMPLE_DIR="$REPO_ROOT/examples/pytorch"

force_base=0
force_trainer=0
force_example=0
examples=1
for arg in "$@"; do
  case "$arg" in
    --force) force_base=1; force_trainer=1; force_example=1 ;;
    --force-trainer) force_trainer=1; force_example=1 ;;
    --no-examples) examples=0 ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-images: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

log() { echo "build-images: $*"; }
die() { echo "build-images: ERROR: $*" >&2; exit 1; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"; fi
}

script_start=$SECONDS
# Non-root users on Debian lack the sbin folders on PATH, where debootstrap lives.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# --- Docker engine ------------------------------------------------------------------------
command -v docker >/dev/null || die "the docker CLI is not installed (apt-get install docker.io)"
if ! docker_err=$(docker info 2>&1 >/dev/null); then
  die "no Docker engine answers (docker info failed: $(echo "$docker_err" | tail -n 1)).
  Start one (e.g. scripts/services.sh, or: dockerd &) or set DOCKER_HOST."
fi

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
# The value of label $2 on image $1 ("" when there is no such image).
image_label() {
  image_exists "$1" || return 0
  docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true
}
# A short hash of the files $2… (each named relative to $1, then its content) and the base
# image's id ($base_id): an image labelled with it is rebuilt when any of them changes.
inputs_hash() {
  local strip=$1; shift
  { for f in "$@"; do echo "${f#"$strip"/}"; cat "$f"; done; echo "$base_id"; } \
    | sha256sum | cut -c1-16
}
# The trainer helper's modules, sorted: both the trainer and the example image copy them.
helper_sources() {
  find "$TRAINER_DIR/trainyard_trainer" -maxdepth 1 -name '*.py' -type f | LC_ALL=C sort
}

# --- Debian mirror ------------------------------------------------------------------------
find_mirror() {
  if [ -n "${TRAINYARD_DEBIAN_MIRROR:-}" ]; then echo "$TRAINYARD_DEBIAN_MIRROR"; return; fi
  local f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    case "$f" in
      *.sources)
        # deb822 stanzas: take URIs of a stanza whose Suites include the plain suite.
        uri=$(awk -v suite="$SUITE" '
          BEGIN { RS=""; FS="\n" }
          {
            u=""; s=0
            for (i = 1; i <= NF; i++) {
              if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, a, /[ \t]+/); u=a[1] }
              if ($i ~ /^Suites:/) { n = split($i, b, /[ \t]+/); for (j = 2; j <= n; j++) if (b[j] == suite) s=1 }
            }
            if (s && u ~ /debian\/?$/) { print u; exit }
          }' "$f") ;;
      *)
        uri=$(awk -v suite="$SUITE" '
          $1 == "deb" {
            k = 2; if ($k ~ /^\[/) { while ($k !~ /\]$/) k++; k++ }
            if ($(k+1) == suite && $k ~ /debian\/?$/) { print $k; exit }
          }' "$f") ;;
    esac
    if [ -n "$uri" ]; then echo "${uri%/}"; return; fi
  done
  echo "http://deb.debian.org/debian"
}

# --- (a) base image -----------------------------------------------------------------------
build_base() {
  command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/services.sh installs it)"
  local mirror cache rootfs t0
  mirror=$(find_mirror)
  cache="${TRAINYARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trainyard/debootstrap}"
  mkdir -p "$cache"
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/trainyard-rootfs.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
  trap "as_root umount -l '$rootfs/proc' '$rootfs/sys' 2>/dev/null || true; as_root rm -rf '$rootfs'" EXIT

  log "building $BASE_IMAGE: debootstrap --variant=minbase --include=python3 $SUITE from $mirror"
  log "  (package cache: $cache)"
  t0=$SECONDS
  # Two stages so that dpkg can run with force-unsafe-io (no fsync per file: the root
  # filesystem is thrown away if anything fails, and the official Debian images do the same).
  as_root debootstrap --foreign --variant=minbase --include=python3 --cache-dir="$cache" \
    "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 30 "$rootfs.log" >&2; die "debootstrap (download/unpack) failed; full log: $rootfs.log"; }
  log "  first stage (download + unpack) done in $((SECONDS - t0))s"
  as_root mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
  echo force-unsafe-io | as_root tee "$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup" >/dev/null
  t0=$SECONDS
  as_root chroot "$rootfs" /debootstrap/debootstrap --second-stage >>"$rootfs.log" 2>&1 \
    || { tail -n 30 "$rootfs.log" >&2; die "debootstrap (second stage) failed; full log: $rootfs.log"; }
  log "  second stage (configure) done in $((SECONDS - t0))s"

  log "  stripping apt caches, docs, man pages and locales"
  as_root sh -c "
    cd '$rootfs' &&
    rm -rf var/cache/apt/*.bin var/cache/apt/archives/*.deb var/cache/apt/archives/partial/* \
           var/lib/apt/lists/* var/cache/debconf/*-old var/lib/dpkg/*-old \
           usr/share/man/* usr/share/info/* usr/share/locale/* usr/share/lintian \
           var/log/* tmp/* dev/* proc/* sys/* &&
    find usr/share/doc -type f ! -name copyright -delete &&
    find usr/share/doc -type d -empty -delete &&
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/locale/*' > etc/dpkg/dpkg.cfg.d/docker-nodoc &&
    printf '%s\n' 'APT::Install-Recommends \"false\";' > etc/apt/apt.conf.d/docker-norecommends
  "

  log "  importing into docker as $BASE_IMAGE"
  t0=$SECONDS
  as_root tar --numeric-owner -C "$rootfs" -c . \
    | docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' \
        --message "debootstrap --variant=minbase --include=python3 $SUITE $mirror" \
        - "$BASE_IMAGE" >/dev/null
  log "  imported in $((SECONDS - t0))s; size $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
  docker run --rm "$BASE_IMAGE" python3 -c 'import csv, json, zipfile, signal, threading' \
    || die "$BASE_IMAGE was built but its python3 does not work"
  as_root rm -rf "$rootfs" "$rootfs.log"
  trap - EXIT
}

if [ "$force_base" = 1 ] || ! image_exists "$BASE_IMAGE"; then
  build_base
else
  log "$BASE_IMAGE exists, keeping it (use --force to rebuild)"
fi

# --- (b) trainer image --------------------------------------------------------------------
[ -f "$TRAINER_DIR/Dockerfile" ] || die "missing $TRAINER_DIR/Dockerfile"
base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
# Every file the Dockerfile copies, names included (a renamed helper module rebuilds too).
trainer_inputs=("$TRAINER_DIR/Dockerfile" "$TRAINER_DIR/.dockerignore" "$TRAINER_DIR/train.py")
while IFS= read -r f; do trainer_inputs+=("$f"); done < <(helper_sources)
want_hash=$(inputs_hash "$TRAINER_DIR" "${trainer_inputs[@]}")
have_hash=$(image_label "$TRAINER_IMAGE" trainyard.trainer.hash)

if [ "$force_trainer" = 1 ] || [ "$have_hash" != "$want_hash" ]; then
  if [ -z "$have_hash" ] && ! image_exists "$TRAINER_IMAGE"; then reason="missing"
  elif [ "$force_trainer" = 1 ]; then reason="forced"
  else reason="trainer sources or base changed"; fi
  log "building $TRAINER_IMAGE from trainer/Dockerfile on $BASE_IMAGE ($reason)"
  t0=$SECONDS
  if ! build_out=$(docker build \
      --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --label "trainyard.trainer.hash=$want_hash" \
      -t "$TRAINER_IMAGE" "$TRAINER_DIR" 2>&1); then
    echo "$build_out" >&2
    die "docker build of $TRAINER_IMAGE failed"
  fi
  log "  built in $((SECONDS - t0))s"
else
  log "$TRAINER_IMAGE is up to date, keeping it (use --force-trainer to rebuild)"
fi

# --- (c) the PyTorch example -----------------------------------------------------------------
HOST_PYTHON=python3
[ -x "$REPO_ROOT/.venv/bin/python" ] && HOST_PYTHON="$REPO_ROOT/.venv/bin/python"

# The wheelhouse the offline build installs from: pip, torch's CPU build and its dependencies,
# for the base image's Python. Downloaded once; again only when requirements.txt changes.
prepare_wheelhouse() {
  local wheels="$EXAMPLE_DIR/wheels" stamp want py_ver glibc arch t0 torch_index=() platforms=()
  want=$(sha256sum "$EXAMPLE_DIR/requirements.txt" | cut -c1-16)
  stamp="$wheels/.requirements-$want"
  if [ -f "$stamp" ]; then log "  wheelhouse up to date ($(du -sh "$wheels" | cut -f1))"; return; fi
  t0=$SECONDS
  read -r py_ver glibc arch < <(docker run --rm --network none --entrypoint python3 "$BASE_IMAGE" -c \
    'import platform, sys; print("%d.%d.%d" % sys.version_info[:3], platform.libc_ver()[1] or "2.17", platform.machine())') \
    || die "cannot run python3 in $BASE_IMAGE"
  platforms=(--platform "manylinux2014_$arch")
  for minor in $(seq 17 "${glibc#2.}"); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
  [ -n "${TRAINYARD_TORCH_INDEX_URL:-}" ] && torch_index=(--index-url "$TRAINYARD_TORCH_INDEX_URL")
  rm -rf "$wheels" && mkdir -p "$wheels"
  log "  downloading torch (CPU build) and its dependencies for Python $py_ver into examples/pytorch/wheels"
  # --no-deps everywhere: requirements.txt pins the whole set, and a resolver asked for a
  # dependency of torch could pick a CUDA build of torch on its own.
  "$HOST_PYTHON" -m pip download --quiet --no-deps --dest "$wheels" "${torch_index[@]}" \
      --only-binary=:all: --python-version "$py_ver" --implementation cp "${platforms[@]}" \
      "$(grep -E '^torch==' "$EXAMPLE_DIR/requirements.txt")" \
    || die "pip download of torch failed (set TRAINYARD_TORCH_INDEX_URL to an index with the CPU build)"
  ls "$wheels"/torch-*+cpu-*.whl >/dev/null 2>&1 \
    || die "pip downloaded $(ls "$wheels") — not a CPU build of torch; set TRAINYARD_TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu)"
  grep -E '^[A-Za-z0-9_.-]+==' "$EXAMPLE_DIR/requirements.txt" | grep -v '^torch==' \
    | xargs "$HOST_PYTHON" -m pip download --quiet --no-deps --dest "$wheels" --only-binary=:all: \
        --python-version "$py_ver" --implementation cp "${platforms[@]}" \
    || die "pip download of torch's dependencies failed"
  touch "$stamp"
  log "  wheelhouse: $(ls "$wheels" | wc -l) wheels, $(du -sh "$wheels" | cut -f1) in $((SECONDS - t0))s"
}

build_example() {
  local t0 helper="$EXAMPLE_DIR/helper"
  prepare_wheelhouse
  # The helper's distribution as it is in this checkout (trainer/pyproject.toml and the
  # package): the image pip-installs it from there, offline (no wheel to build on the host).
  rm -rf "$helper" && mkdir -p "$helper/trainyard_trainer"
  cp "$TRAINER_DIR/pyproject.toml" "$helper/"
  cp "$TRAINER_DIR"/trainyard_trainer/*.py "$helper/trainyard_trainer/"
  log "building $EXAMPLE_IMAGE from examples/pytorch/Dockerfile (offline: --network none)"
  t0=$SECONDS
  if ! build_out=$(docker build --network none \
      --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --label "trainyard.example.hash=$1" \
      -t "$EXAMPLE_IMAGE" "$EXAMPLE_DIR" 2>&1); then
    echo "$build_out" | tail -n 30 >&2
    die "docker build of $EXAMPLE_IMAGE failed"
  fi
  log "  built in $((SECONDS - t0))s; size $(docker image inspect -f '{{.Size}}' "$EXAMPLE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
}

if [ "$examples" = 1 ]; then
  example_inputs=("$EXAMPLE_DIR/Dockerfile" "$EXAMPLE_DIR/.dockerignore" "$EXAMPLE_DIR/requirements.txt"
                  "$EXAMPLE_DIR/train.py" "$TRAINER_DIR/pyproject.toml")
  while IFS= read -r f; do example_inputs+=("$f"); done < <(helper_sources)
  example_hash=$(inputs_hash "$REPO_ROOT" "${example_inputs[@]}")
  have_example=$(image_label "$EXAMPLE_IMAGE" trainyard.example.hash)
  if [ "$force_example" = 1 ] || [ "$have_example" != "$example_hash" ]; then
    build_example "$example_hash"
  else
    log "$EXAMPLE_IMAGE is up to date, keeping it (use --force-trainer to rebuild)"
  fi
fi

# --- (d) service images (PostgreSQL, Redis) for compose on hosts with no registry -------------
bash "$REPO_ROOT/scripts/build-service-images.sh"

log "done in $((SECONDS - script_start))s: $BASE_IMAGE, $TRAINER_IMAGE$([ "$examples" = 1 ] && echo ", $EXAMPLE_IMAGE")"
