# lightd agent image: the `lightd` daemon, nothing of the coordinator.
#
# Build context: a directory holding wheels/{deps,lightd}/ and requirements/agent.txt (uv.lock pins),
# the files of deploy/docker/ and docker-cli/docker (a docker CLI binary, the client only: the
# engine stays the host's, through its socket); scripts/build-images assembles it and builds this
# file:
#
#   scripts/build-images                          # local base image, no registry needed
#   scripts/build-images --base python:3.11-slim  # the usual base, where a registry is reachable
#
# Run (the agent drives the host's engine through its socket, so it needs the socket's group;
# storage must be mounted at the SAME path as on the host, because the engine resolves the bind
# mounts the agent asks for on the host):
#
#   docker run -d --name lightd -p 8070:8070 \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/lib/lightd:/var/lib/lightd \
#     -v /etc/lightd:/etc/lightd \
#     lightd-agent
#
# Config: /etc/lightd/config.json (written with a fresh token on first start when absent), every
# field overridable by LIGHTD_<SECTION>__<FIELD>. See docs/deploy.md.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
LABEL org.lightd.build-stage="agent"
# --no-index: the wheels in the context are the whole world, so the build never reaches for a
# package index. Dependencies first, pinned by uv.lock (requirements/agent.txt): that layer is
# reused until the lock changes. Then lightd's own wheels; only what lightd-agent depends on
# is installed (the coordinator's wheel stays behind).
COPY wheels/deps/ /wheels/deps/
COPY requirements/agent.txt /wheels/requirements.txt
RUN python3 -m venv /opt/lightd \
    && /opt/lightd/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /wheels/deps -r /wheels/requirements.txt
COPY wheels/lightd/ /wheels/lightd/
RUN /opt/lightd/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /wheels/deps --find-links /wheels/lightd lightd-agent \
    && /opt/lightd/bin/lightd --version

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="lightd-agent" \
      org.opencontainers.image.description="lightd: per-host agent running Docker containers"
# A fixed uid/gid, so host directories can be prepared for it (chown 10001 /var/lib/lightd).
# Docker socket access comes from --group-add <the socket's gid> at run time: that gid differs
# between hosts, so it cannot be baked in. Access to the socket is root-equivalent on the host;
# running as a plain user still keeps a bug in the agent from writing anywhere else.
RUN groupadd --system --gid 10001 lightd \
    && useradd --system --uid 10001 --gid lightd --home-dir /var/lib/lightd \
        --no-create-home --shell /usr/sbin/nologin lightd \
    && install -d -o lightd -g lightd -m 0750 /etc/lightd /var/lib/lightd
COPY --from=build /opt/lightd /opt/lightd
COPY healthcheck.py /usr/local/lib/lightd/healthcheck.py
COPY agent-entrypoint.sh /usr/local/bin/lightd-entrypoint
# The docker CLI, so host shell commands the agent runs (`exec`, where commands.allow_exec is on)
# can say `docker ps`: it talks to the host's engine through the mounted socket, with the
# socket's group the container is given. Run once here, so a binary that cannot run on this base
# fails the build.
COPY docker-cli/docker /usr/local/bin/docker
RUN chmod 0755 /usr/local/bin/lightd-entrypoint /usr/local/bin/docker \
    && /usr/local/bin/docker --version
ENV PATH=/opt/lightd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER lightd
WORKDIR /var/lib/lightd
EXPOSE 8070
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/lightd/bin/python", "/usr/local/lib/lightd/healthcheck.py", "agent", "/etc/lightd/config.json"]
ENTRYPOINT ["/usr/local/bin/lightd-entrypoint"]
CMD ["run", "-c", "/etc/lightd/config.json"]
