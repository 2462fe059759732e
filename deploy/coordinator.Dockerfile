# lightd-coordinator image: the central server, nothing of the agent (no Docker SDK).
#
# Build context: a directory holding wheels/{deps,lightd}/, requirements/coordinator.txt (the
# uv.lock pins), deploy/docker/healthcheck.py and deploy/coordinator.production.yaml;
# scripts/build-images assembles it and builds this file (`--base python:3.11-slim` where a
# registry is reachable).
#
# The image's config is the production example (auth on, sqlite registry under
# /var/lib/lightd-coordinator, JSON logs). Its secrets are placeholders the coordinator refuses,
# so give real ones (never bake them into an image):
#
#   docker run -d --name lightd-coordinator -p 127.0.0.1:3001:3001 \
#     -e VENDETTA_JWT_SECRET="$(openssl rand -hex 32)" \
#     -v lightd-coordinator-data:/var/lib/lightd-coordinator \
#     lightd-coordinator
#
# or mount your own file at /etc/lightd-coordinator/config.yaml. Put a TLS reverse proxy in front
# (docs/deploy.md).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
LABEL org.lightd.build-stage="coordinator"
# --no-index: the wheels in the context are the whole world, so the build never reaches for a
# package index. Dependencies first, pinned by uv.lock (requirements/coordinator.txt): that layer is
# reused until the lock changes. Then lightd's own wheels; only what lightd-coordinator depends on
# is installed (the agent's wheel stays behind).
COPY wheels/deps/ /wheels/deps/
COPY requirements/coordinator.txt /wheels/requirements.txt
RUN python3 -m venv /opt/lightd-coordinator \
    && /opt/lightd-coordinator/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /wheels/deps -r /wheels/requirements.txt
COPY wheels/lightd/ /wheels/lightd/
RUN /opt/lightd-coordinator/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /wheels/deps --find-links /wheels/lightd lightd-coordinator \
    && /opt/lightd-coordinator/bin/lightd-coordinator --version

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="lightd-coordinator" \
      org.opencontainers.image.description="lightd-coordinator: node registry, dispatch, events"
RUN groupadd --system --gid 10001 lightd \
    && useradd --system --uid 10001 --gid lightd --home-dir /var/lib/lightd-coordinator \
        --no-create-home --shell /usr/sbin/nologin lightd \
    && install -d -o lightd -g lightd -m 0750 /var/lib/lightd-coordinator \
    && install -d -m 0755 /etc/lightd-coordinator
COPY --from=build /opt/lightd-coordinator /opt/lightd-coordinator
COPY healthcheck.py /usr/local/lib/lightd/healthcheck.py
COPY coordinator.production.yaml /etc/lightd-coordinator/config.yaml
ENV PATH=/opt/lightd-coordinator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER lightd
WORKDIR /var/lib/lightd-coordinator
# The registry and command results (sqlite) live here: keep it on a volume.
VOLUME ["/var/lib/lightd-coordinator"]
EXPOSE 3001
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/lightd-coordinator/bin/python", "/usr/local/lib/lightd/healthcheck.py", "coordinator", "/etc/lightd-coordinator/config.yaml"]
ENTRYPOINT ["lightd-coordinator"]
CMD ["start", "-c", "/etc/lightd-coordinator/config.yaml"]
