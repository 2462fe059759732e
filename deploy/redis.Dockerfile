# lightd-redis image: the Redis server the coordinator replicas share (registry.provider: redis),
# for the opt-in scale-out topology (docker-compose.redis.yml).
#
# Where a registry is reachable use the official image instead (`image: redis:7` in the compose
# file). Here nothing can be pulled, so scripts/build-redis-image stages this host's Debian
# redis-server (and the libraries it links) into the context and builds this file over the
# local Debian base image (the same distribution, so the libraries fit).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY redis/ /opt/redis/
ENV LD_LIBRARY_PATH=/opt/redis/lib
# Data (the append-only file) on /data, owned by the unprivileged user Redis runs as.
RUN mkdir -p /data && chown 65534:65534 /data
VOLUME /data
USER 65534:65534
EXPOSE 6379
# appendonly: a restarted Redis keeps the fleet; protected-mode off because the compose network
# is the only one it listens on (never publish this port).
ENTRYPOINT ["/opt/redis/bin/redis-server"]
CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--appendonly", "yes", "--dir", "/data"]
