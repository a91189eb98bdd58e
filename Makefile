# db-backup-controller — developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NPM ?= npm

.PHONY: help deps install build typecheck lint test test-unit test-integration check demo bench clean generate check-generated kube

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-24s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install system packages the tests and demo need (PostgreSQL, zstd, age) when missing
	@bash testenv/install-deps.sh

node_modules/.package-lock.json: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --ignore-scripts
	@touch $@

install: node_modules/.package-lock.json ## install npm packages (npm ci)

build: install ## compile TypeScript to dist/
	$(NPM) run --silent build

typecheck: install ## type-check everything, tests included
	$(NPM) run --silent typecheck

lint: install ## eslint (import boundaries, floating promises, no console)
	$(NPM) run --silent lint

test-unit: install ## unit tests (pure logic)
	$(NPM) run --silent test:unit

generate: install ## render the chart's generated files: the CRD templates (from api/crds/) and the shipped engines (from tools/)
	npx tsx scripts/generate.ts

check-generated: install ## fail when the committed generated chart files differ from their sources (run make generate)
	npx tsx scripts/generate.ts --check

kube: ## build kube-apiserver 1.20 + kube-controller-manager once (~12 min cold; cached: returns at once)
	@bash testenv/kube/build.sh

test-integration: install deps kube ## integration tests against real PostgreSQL, S3 server, GCS emulator and kube-apiserver
	$(NPM) run --silent test:integration

test: install deps check-generated typecheck lint test-unit test-integration ## everything CI runs

check: test ## alias of test

demo: install deps build ## back up a throwaway PostgreSQL to a folder and an S3 server, drop it, restore it
	@bash testenv/demo.sh

bench: install deps build ## benchmarks against the raw tools (BENCH_SIZE_MB=1024 for the 1 GB run)
	npx tsx bench/backup.bench.ts
	npx tsx bench/copy.bench.ts

# Images, publishing and the minikube test environment live in their own files.
-include $(wildcard mk/*.mk)

clean: ## remove build output
	rm -rf dist coverage
