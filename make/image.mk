# Container image: `make image` builds it, `make image-test` builds it and checks it runs as operators run it.
# Included from the Makefile (uses its BIN, STAMP and STAMP_TEST).
#
# The engine is docker when a Docker daemon answers, else podman (built with --pull=never --format docker,
# which keeps HEALTHCHECK). Override with `make image CONTAINER_ENGINE=...`.

IMAGE ?= lenses-hq-exporter:dev
CONTAINER_ENGINE ?= $(shell if docker info >/dev/null 2>&1; then echo docker; \
	elif command -v podman >/dev/null 2>&1; then echo podman; else echo docker; fi)
IMAGE_BUILD_FLAGS ?= $(if $(filter podman,$(notdir $(CONTAINER_ENGINE))),--pull=never --format docker)
IMAGE_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# The image's platform (`--platform` of the build), e.g. linux/arm64; empty: this machine's. Another platform
# takes that architecture's wheels (`make wheelhouse IMAGE_PLATFORM=linux/arm64` downloads them, compiling
# nothing) and a builder that can run it (QEMU or a native machine). Only linux/amd64 is built and run by
# `make image-test` here.
IMAGE_PLATFORM ?=
IMAGE_PYTHON_VERSION ?= 3.11
WHEELHOUSE ?= $(if $(IMAGE_PLATFORM),dist/wheelhouse-$(subst /,-,$(IMAGE_PLATFORM)),dist)

.PHONY: wheelhouse image image-test

# Wheels of the project and of every dependency, so that the image build needs no network.
wheelhouse: | $(BIN)/python
ifeq ($(IMAGE_PLATFORM),)
	rm -f dist/lenses_hq_exporter-*.whl
	$(BIN)/pip wheel --quiet -w dist/ .
else
	make/wheelhouse.sh $(BIN)/pip $(IMAGE_PLATFORM) $(IMAGE_PYTHON_VERSION) $(WHEELHOUSE)
endif

image: wheelhouse
	$(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) $(if $(IMAGE_PLATFORM),--platform $(IMAGE_PLATFORM)) \
		--build-arg VERSION=$(IMAGE_VERSION) --build-arg WHEELHOUSE=$(WHEELHOUSE) -t $(IMAGE) .

image-test: image $(STAMP_TEST)
	IMAGE_TEST=1 IMAGE=$(IMAGE) CONTAINER_ENGINE=$(CONTAINER_ENGINE) $(BIN)/pytest -q -s -p no:cacheprovider tests/deploy/test_image.py

# Kubernetes manifests generated from alerts/*.yml and dashboards/*.json (deploy/kubernetes).
.PHONY: manifests
manifests: $(STAMP)
	$(BIN)/python -m deploy.generate
