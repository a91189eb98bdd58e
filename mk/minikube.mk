# The minikube test environment: the controller from this checkout in minikube, and
# PostgreSQL, MariaDB, MinIO and DatabaseBackups of the databases to back up, delete and
# restore (the force-local-* targets: PostgreSQL's; force-local-pitr-restore restores the
# PostgreSQL server to an instant from its physical DatabaseBackup). The shell lives in
# testenv/minikube/*.sh; docs/testenv-minikube.md describes the flow. Every kubectl call
# names the context $(TESTENV_KUBE_CONTEXT), never the current one.

MINIKUBE_PROFILE ?= minikube
TESTENV_KUBE_CONTEXT ?= $(MINIKUBE_PROFILE)
# Registry prefix and tag of the images `make images` builds (mk/images.mk's values win).
LOCAL_IMAGE ?= localhost/db-backup-controller
LOCAL_IMAGE_TAG ?= dev
# true: the PostgreSQL seed Job adds about TESTENV_HUGEDATA_GB GB of rows.
TESTENV_HUGEDATA ?= false
TESTENV_HUGEDATA_GB ?= 4

MINIKUBE_ENV = MINIKUBE_PROFILE=$(MINIKUBE_PROFILE) TESTENV_KUBE_CONTEXT=$(TESTENV_KUBE_CONTEXT)

.PHONY: deploy-local deploy-testenv force-local-backup force-local-dbdelete force-local-restore force-local-pitr-restore undeploy-testenv testenv-status

deploy-local: install ## minikube: build the images (LOCAL_IMAGE), load them, helm upgrade --install the chart, wait for the controller
	$(MINIKUBE_ENV) LOCAL_IMAGE=$(LOCAL_IMAGE) LOCAL_IMAGE_TAG=$(LOCAL_IMAGE_TAG) bash testenv/minikube/deploy-local.sh

deploy-testenv: ## minikube: PostgreSQL 16 + MariaDB 10.11 + seeds, MinIO + bucket, storage class, a DatabaseBackup each (PostgreSQL: also a physical one); wait for the runners (TESTENV_HUGEDATA=true: GBs)
	$(MINIKUBE_ENV) TESTENV_HUGEDATA=$(TESTENV_HUGEDATA) TESTENV_HUGEDATA_GB=$(TESTENV_HUGEDATA_GB) bash testenv/minikube/deploy-testenv.sh

force-local-backup: ## minikube: backup-runner backup in the PostgreSQL runner pod (found by its labels)
	$(MINIKUBE_ENV) bash testenv/minikube/force-local-backup.sh

force-local-dbdelete: ## minikube: drop the seeded database (TESTENV_DBDELETE=tables: its tables), after saying what it holds
	$(MINIKUBE_ENV) bash testenv/minikube/force-local-dbdelete.sh

force-local-restore: ## minikube: backup-runner restore --latest (--force when the database holds data), then compare table checksums with the seed
	$(MINIKUBE_ENV) bash testenv/minikube/force-local-restore.sh

force-local-pitr-restore: ## minikube: marker rows before and after an instant T, then the PostgreSQL server restored to T (shop-pitr, restore --to-time --start in a pod) and checked
	$(MINIKUBE_ENV) bash testenv/minikube/force-local-pitr-restore.sh

undeploy-testenv: ## minikube: delete the testenv (namespace, storage class, DatabaseBackups) and the backups in MinIO with it
	$(MINIKUBE_ENV) bash testenv/minikube/undeploy-testenv.sh

testenv-status: ## minikube: the DatabaseBackups and their conditions, the runner pods, backup-runner status and list
	$(MINIKUBE_ENV) bash testenv/minikube/testenv-status.sh
