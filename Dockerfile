# lenses-hq-exporter container image.
#
# The build needs no network: `make image` first fills dist/ with wheels of the project and of every
# dependency (`pip wheel -w dist/ .`), and this file installs from there with `pip install --no-index`.
#
#   make image                      # wheelhouse + build, tagged lenses-hq-exporter:dev
#   docker run --rm -p 9877:9877 lenses-hq-exporter:dev demo
#
# Another platform: `make image IMAGE_PLATFORM=linux/arm64` downloads that architecture's wheels into
# dist/wheelhouse-linux-arm64 (WHEELHOUSE) and builds with `--platform linux/arm64`, which needs a builder
# able to run arm64 (QEMU or an arm64 machine). Only linux/amd64 images are built and tested by
# `make image-test`.
#
# The exporter runs as PID 1 without an init: it installs its own SIGTERM/SIGINT handlers and exits 0 on
# either, within a few seconds. `--init` (or Kubernetes' default) is harmless but not needed.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The folder of the build context holding the wheels (of the platform being built).
ARG WHEELHOUSE=dist
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
COPY ${WHEELHOUSE}/ /tmp/wheelhouse/
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
    LENSES_HQ_EXPORTER_ADDRESS_FILE=/tmp/lenses-hq-exporter.address
USER 65532:65532
WORKDIR /tmp
EXPOSE 9877
# The exporter writes the URL it listens on to LENSES_HQ_EXPORTER_ADDRESS_FILE once it serves (whether the
# address came from --web.listen-address, the environment or the config file, with TLS or not), and
# `healthcheck` asks that URL's /healthz: the check follows the listen address however it was set.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["lenses-hq-exporter", "healthcheck"]
ENTRYPOINT ["lenses-hq-exporter"]
CMD ["run"]
