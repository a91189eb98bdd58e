# Container images and publishing: the images in images/matrix.json (one controller, one runner per engine and
# server version), built with docker and published with the chart. docs/images.md describes them.

# Registry and namespace of the image tags and of the chart (oci://$(IMAGE_REGISTRY)/charts); empty: the
# matrix's, ghcr.io/db-backup-controller.
IMAGE_REGISTRY ?=
# The version in every tag; empty: scripts/version.sh (vX.Y.Z on a clean HEAD -> X.Y.Z, else 0.0.0-<git describe>).
IMAGE_VERSION ?= $(VERSION)
# A second, stable tag per image for local use (the minikube test environment loads these):
# $(LOCAL_IMAGE)/<repository>:[<server version>-]$(LOCAL_IMAGE_TAG). LOCAL_IMAGE= (empty): none.
LOCAL_IMAGE ?= localhost/db-backup-controller
LOCAL_IMAGE_TAG ?= dev
# Only these images (names from images/matrix.json, e.g. IMAGES='controller runner-postgresql-16'); empty: all.
IMAGES ?=
# Shell scripts `make lint-scripts` checks.
SHELL_SCRIPTS ?= $(wildcard scripts/*.sh) $(wildcard examples/engines/*/*.sh)

IMAGE_ENV = IMAGE_REGISTRY='$(IMAGE_REGISTRY)' VERSION='$(IMAGE_VERSION)' IMAGES='$(IMAGES)'

.PHONY: images version publish check-images lint-scripts shellcheck

images: ## docker build of every image in images/matrix.json, tagged <IMAGE_REGISTRY>/<name>:<version> (DRY_RUN=1 prints the commands)
	@$(IMAGE_ENV) LOCAL_IMAGE='$(LOCAL_IMAGE)' LOCAL_IMAGE_TAG='$(LOCAL_IMAGE_TAG)' bash scripts/build-images.sh

version: ## print the version images and chart get from git describe (vX.Y.Z -> X.Y.Z, else 0.0.0-<describe>)
	@if [ -n '$(IMAGE_VERSION)' ]; then echo '$(IMAGE_VERSION)'; else bash scripts/version.sh; fi

publish: ## push the images, then helm package + helm push the chart to oci://<IMAGE_REGISTRY>/charts (helm >= 3.8; DRY_RUN=1 prints)
	@$(IMAGE_ENV) bash scripts/publish.sh

check-images: install ## check the image matrix against the chart, the controller and the Dockerfiles (also part of make test-unit)
	npx --no-install tsx scripts/check-images.ts

lint-scripts: shellcheck ## shellcheck the shell scripts (scripts/*.sh), installing shellcheck with apt-get when missing
	shellcheck $(SHELL_SCRIPTS)

# test/unit/images.test.ts runs shellcheck too, so the unit tests need it as much as lint does.
lint: lint-scripts
test-unit: shellcheck

shellcheck:
	@command -v shellcheck >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -ne 0 ]; then echo "shellcheck is missing: install it as root (apt-get install shellcheck)" >&2; exit 1; fi; \
	  echo "installing shellcheck"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends shellcheck; }
