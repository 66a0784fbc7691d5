# The API and worker image. BASE_IMAGE defaults to a public Python image; offline machines
# build against the local base image (scripts/build-images.sh).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
WORKDIR /srv/trainyard
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY workers workers
COPY migrations migrations
RUN pip install --no-cache-dir -e .
USER 1000
