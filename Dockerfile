# lenses-hq-exporter container image.
#
# The build needs no network: `make image` first fills dist/ with wheels of the project and of every
# dependency (`pip wheel -w dist/ .`), and this file installs from there with `pip install --no-index`.
#
#   make image                      # wheelhouse + build, tagged lenses-hq-exporter:dev
#   docker run --rm -p 9877:9877 lenses-hq-exporter:dev demo
#
# The exporter runs as PID 1 without an init: it installs its own SIGTERM/SIGINT handlers and exits 0 on
# either, within a few seconds. `--init` (or Kubernetes' default) is harmless but not needed.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
COPY dist/ /tmp/wheelhouse/
RUN /opt/venv/bin/pip install --no-index --find-links=/tmp/wheelhouse lenses-hq-exporter \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && /opt/venv/bin/lenses-hq-exporter --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="lenses-hq-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Lenses HQ environments and Confluent Cloud Flink agents" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# A fixed numeric user, so that Kubernetes' runAsNonRoot can verify it without a runAsUser.
RUN groupadd --system --gid 65532 exporter \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin exporter
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:9877/healthz
USER 65532:65532
WORKDIR /tmp
EXPOSE 9877
# HEALTHCHECK_URL follows --web.listen-address when the exporter listens elsewhere.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["lenses-hq-exporter"]
CMD ["run"]
