#!/bin/sh
# Like the official image: options alone (`--requirepass x`) mean redis-server; the data
# folder (/data, the working directory: the append-only file lands there) belongs to redis,
# and the server runs as redis.
set -eu
case "${1:-}" in -*) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
  chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
