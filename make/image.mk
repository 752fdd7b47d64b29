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

.PHONY: wheelhouse image image-test

# Wheels of the project and of every dependency, so that the image build needs no network.
wheelhouse: | $(BIN)/python
	rm -f dist/lenses_hq_exporter-*.whl
	$(BIN)/pip wheel --quiet -w dist/ .

image: wheelhouse
	$(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) --build-arg VERSION=$(IMAGE_VERSION) -t $(IMAGE) .

image-test: image $(STAMP_TEST)
	IMAGE_TEST=1 IMAGE=$(IMAGE) CONTAINER_ENGINE=$(CONTAINER_ENGINE) $(BIN)/pytest -q -s -p no:cacheprovider tests/test_image.py

# Kubernetes manifests generated from alerts/*.yml and dashboards/*.json (deploy/kubernetes).
.PHONY: manifests
manifests: $(STAMP)
	$(BIN)/python -m deploy.generate
