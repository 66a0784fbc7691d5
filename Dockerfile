# The API / worker / Flower image (one image, three commands; see docker-compose.yml).
#
#   BASE_IMAGE  any Debian/Ubuntu-like image with python3 >= 3.11 (default python:3.11-slim).
#               Offline machines build on the local base image: scripts/build-app-image.sh
#               (BASE_IMAGE=trainyard/base:bookworm, made by scripts/build-images.sh).
#
# Packages: when build/wheels/ holds wheels (scripts/build-app-image.sh fills it with the
# host's pip, for the image's Python), the build installs from there with --no-index and needs
# no network. Otherwise it installs from the package index (needs pip and network in the build).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY . .
# A plain (not editable) install: the image runs what a wheel carries (migrations, trainer),
# and no source folder is copied into it.
RUN set -e; \
    if ls build/wheels/pip-*.whl >/dev/null 2>&1; then \
        python3 -m venv --without-pip /opt/trainyard; \
        pip="/opt/trainyard/bin/python $(ls build/wheels/pip-*.whl | head -n 1)/pip"; \
        $pip install --no-cache-dir --no-index --find-links build/wheels pip setuptools wheel; \
        /opt/trainyard/bin/pip install --no-cache-dir --no-index --find-links build/wheels \
            --no-build-isolation .; \
    else \
        python3 -m venv /opt/trainyard; \
        /opt/trainyard/bin/pip install --no-cache-dir .; \
    fi

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/trainyard \
    PATH=/opt/trainyard/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TRAINYARD_HOME=/srv/trainyard/var
# uid 1000 (the trainer image's user too), without useradd: minimal bases have none.
RUN set -e; \
    grep -q '^[^:]*:[^:]*:1000:' /etc/group || echo 'trainyard:x:1000:' >> /etc/group; \
    grep -q '^[^:]*:[^:]*:1000:' /etc/passwd \
        || echo 'trainyard:x:1000:1000:trainyard:/srv/trainyard:/usr/sbin/nologin' >> /etc/passwd; \
    mkdir -p /srv/trainyard/var && chown 1000:1000 /srv/trainyard/var
COPY --from=build /opt/trainyard /opt/trainyard
WORKDIR /srv/trainyard
USER 1000
EXPOSE 8000 5555
# The API refuses this public bind without API_TOKEN (docs/security.md); GUNICORN_CMD_ARGS makes
# a plain `gunicorn app.factory:create_app()` in this image load the same check.
ENV GUNICORN_CMD_ARGS="--config python:app.gunicorn_conf"
CMD ["trainyard", "api", "--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "4"]
