#!/bin/sh
# Entry point of the lightd-agent image: `lightd "$@"`, after making sure a config exists.
#
# `lightd run -c PATH` needs a config file. When PATH is absent (no file mounted there), this
# writes `lightd config`'s complete default, with a freshly generated token, to PATH first, so
# `docker run lightd-agent` works with environment overrides alone (LIGHTD_SERVER__PORT, ...).
# The token is never printed: read it with `docker exec CONTAINER lightd token show`. Mount a
# file or a volume at /etc/lightd to keep the token across re-created containers.
set -eu

if [ "${1:-}" = "run" ]; then
    config=""
    prev=""
    for arg in "$@"; do
        case "$prev" in -c | --config) config="$arg" ;; esac
        case "$arg" in --config=*) config="${arg#--config=}" ;; esac
        prev="$arg"
    done
    if [ -n "$config" ] && [ ! -e "$config" ]; then
        umask 077
        if ! lightd config >"$config.new" || ! mv "$config.new" "$config"; then
            rm -f "$config.new"
            echo "lightd-entrypoint: no config at $config and cannot write one there;" \
                "mount a config file (or a writable directory) at $(dirname "$config")" >&2
            exit 1
        fi
        echo "lightd-entrypoint: no config at $config: wrote a default one with a fresh token" \
            "(read it with: docker exec <container> lightd token show)" >&2
    fi
fi
exec lightd "$@"
