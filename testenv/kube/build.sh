#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager 1.20.2 from Debian's
# `kubernetes` source package and caches them for testenv/kube.ts.
#
#   bash testenv/kube/build.sh            # no-op when the cache is current
#   bash testenv/kube/build.sh --force    # rebuild even when it is
#   bash testenv/kube/build.sh --prune    # after building, drop the source tree
#                                         # and Go build cache (keeps only bin/)
#
# Layout of ${KUBE_CACHE:-$HOME/.cache/db-backup-controller/kube}:
#   bin/kube-apiserver bin/kube-controller-manager bin/STAMP   the product
#   work/apt/        private apt sources list and lists (deb-src bookworm main)
#   work/dl/         the downloaded .dsc, orig tarball and debian tarball
#   work/src/        the unpacked, patched source tree; its _output/local/go/cache
#                    is the Go build cache (Kubernetes' hack/ sets GOCACHE there),
#                    kept so that a rebuild takes about a minute
#
# Invariants:
# - The system's apt configuration and lists are never modified: the deb-src
#   line lives in work/apt/ and apt runs with Dir::Etc::sourcelist,
#   Dir::Etc::sourceparts and Dir::State::Lists pointing there.
# - Packages are installed only when missing (golang-go,
#   golang-github-modern-go-reflect2-dev, etcd-server, dpkg-dev, make, rsync;
#   Kubernetes' hack/ scripts copy build output with rsync).
# - bin/ is replaced only after both binaries built; STAMP is written last,
#   so an interrupted build is never mistaken for a finished one.
# - The first line of bin/STAMP is the build recipe; a cache built by another
#   recipe is rebuilt.
# - The whole script is one function called on the last line, so bash has
#   parsed all of it before running anything (editing it mid-build is safe).
set -euo pipefail

main() {

RECIPE='kubernetes 1.20.2 / debian source bookworm / reflect2 from debian / cgo off / recipe 1'
KUBE_CACHE="${KUBE_CACHE:-$HOME/.cache/db-backup-controller/kube}"
BIN="$KUBE_CACHE/bin"
WORK="$KUBE_CACHE/work"
SRC_PARENT="$WORK/src"
SRC="$SRC_PARENT/kubernetes-1.20.2"
REFLECT2_DEBIAN=/usr/share/gocode/src/github.com/modern-go/reflect2
TARGETS=(kube-apiserver kube-controller-manager)

FORCE=0
PRUNE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --prune) PRUNE=1 ;;
    -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[kube/build.sh] %s\n' "$*" >&2; }
die() { printf '[kube/build.sh] ERROR: %s\n' "$*" >&2; exit 1; }

cache_is_current() {
  local t
  for t in "${TARGETS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done
  [[ -f "$BIN/STAMP" ]] && [[ "$(head -n1 "$BIN/STAMP")" == "$RECIPE" ]]
}

if [[ $FORCE == 0 ]] && cache_is_current; then
  log "cached: $BIN ($(sed -n 2p "$BIN/STAMP"))"
  # A cache restored onto a fresh machine has the binaries but not etcd.
  command -v etcd >/dev/null || log 'note: etcd is not installed; testenv/kube.ts needs it: apt-get install -y etcd-server'
  exit 0
fi

# ---- timing -------------------------------------------------------------
T_ALL=$(date +%s.%N)
T_STEP=$T_ALL
STEP='start'
TIMINGS=()
step() {
  STEP="$1"
  T_STEP=$(date +%s.%N)
  log "== $STEP"
}
done_step() {
  local dt
  dt=$(awk -v a="$T_STEP" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  TIMINGS+=("$(printf '%-44s %7s s' "$STEP" "$dt")")
  log "   done in ${dt} s"
}
trap 'rc=$?; [[ $rc == 0 ]] || log "FAILED during step: $STEP (exit $rc)"' EXIT

# ---- 1. packages ----------------------------------------------------------
step 'install missing Debian packages'
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == 'install ok installed' ]]; }
MISSING=()
for p in golang-go golang-github-modern-go-reflect2-dev etcd-server dpkg-dev; do
  installed "$p" || MISSING+=("$p")
done
command -v make >/dev/null || MISSING+=(make)
command -v rsync >/dev/null || MISSING+=(rsync)
if ((${#MISSING[@]} > 0)); then
  if [[ $(id -u) != 0 ]]; then
    die "missing packages: ${MISSING[*]}. Install them as root: apt-get install -y ${MISSING[*]}"
  fi
  log "installing: ${MISSING[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${MISSING[@]}" \
    || die "apt-get install ${MISSING[*]} failed; if apt says a package is unknown, run 'apt-get update' and retry"
else
  log 'all present'
fi
[[ -d "$REFLECT2_DEBIAN" ]] || die "$REFLECT2_DEBIAN is missing although golang-github-modern-go-reflect2-dev is installed"
# Debian's Go, as debian/rules uses it, ahead of any other Go on PATH.
export PATH="/usr/lib/go/bin:$PATH"
command -v go >/dev/null || die "no 'go' on PATH after installing golang-go"
GO_VERSION=$(go env GOVERSION)
log "using $GO_VERSION ($(command -v go))"
done_step

# ---- 2. source package ----------------------------------------------------
step 'download source package (private apt lists)'
APT_DIR="$WORK/apt"
mkdir -p "$APT_DIR/lists/partial" "$WORK/dl"
cat >"$APT_DIR/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
EOF
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
  -o 'Dir::Etc::sourceparts=-'
  -o "Dir::State::Lists=$APT_DIR/lists"
  # No shared binary caches either: these would otherwise be rebuilt from our lists.
  -o 'Dir::Cache::pkgcache='
  -o 'Dir::Cache::srcpkgcache='
  # The download dir belongs to root; the _apt sandbox user could not write there.
  -o 'APT::Sandbox::User=root'
)
apt-get "${APT_OPTS[@]}" -q update >/dev/null \
  || die "apt-get update of the private deb-src list ($APT_DIR/sources.list) failed: is deb.debian.org reachable?"
SRC_VERSION=$(apt-cache "${APT_OPTS[@]}" showsrc kubernetes 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
[[ -n "$SRC_VERSION" ]] || die 'the kubernetes source package is not listed in bookworm main'
[[ "$SRC_VERSION" == *really1.20.2* ]] || die "unexpected kubernetes source version $SRC_VERSION (this recipe is for 1.20.2)"
log "kubernetes source $SRC_VERSION"
(cd "$WORK/dl" && apt-get "${APT_OPTS[@]}" -q source --download-only "kubernetes=$SRC_VERSION" >/dev/null) \
  || die "apt-get source --download-only kubernetes=$SRC_VERSION failed"
DSC="$WORK/dl/kubernetes_${SRC_VERSION#*:}.dsc"
[[ -f "$DSC" ]] || die "expected $DSC after the download"
done_step

# ---- 3. unpack and patch ---------------------------------------------------
step 'unpack source tree and swap reflect2'
PREPARED="$SRC/.prepared-for-db-backup-controller"
if [[ -f "$PREPARED" && "$(cat "$PREPARED")" == "$SRC_VERSION" ]]; then
  log "reusing $SRC"
else
  rm -rf "$SRC_PARENT"
  mkdir -p "$SRC_PARENT"
  # dpkg-source checks the .dsc checksums and applies Debian's patches.
  dpkg-source -x "$DSC" "$SRC" >"$WORK/dpkg-source.log" 2>&1 \
    || die "dpkg-source -x failed; see $WORK/dpkg-source.log"
  [[ -d "$SRC/vendor/github.com/modern-go/reflect2" ]] || die "vendor/github.com/modern-go/reflect2 not found in $SRC"
  # The vendored reflect2 1.0.1 crashes at run time under Go >= 1.18; Debian's copy is fixed.
  rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
  cp -rL "$REFLECT2_DEBIAN" "$SRC/vendor/github.com/modern-go/reflect2"
  # GOPATH layout as in debian/rules.
  mkdir -p "$SRC/.go/src/k8s.io"
  ln -sfn ../../.. "$SRC/.go/src/k8s.io/kubernetes"
  echo "$SRC_VERSION" >"$PREPARED"
fi
done_step

# ---- 4. build --------------------------------------------------------------
# hack/lib/golang.sh sets its own GOPATH and GOCACHE under _output/local/go.
export GOPATH="$SRC/.go" GOPROXY=off CGO_ENABLED=0 GOFLAGS=
# A failed make can leave empty generator binaries behind that make then
# considers up to date: after a failure, drop the built binaries (not the Go
# build cache beside them, so this is cheap).
MAKE_FAILED="$SRC/.make-failed"
if [[ -f "$MAKE_FAILED" ]]; then
  log "the previous build failed: removing $SRC/_output/local/bin"
  rm -rf "$SRC/_output/local/bin"
fi
for t in "${TARGETS[@]}"; do
  step "make WHAT=cmd/$t"
  (cd "$SRC" && make WHAT="cmd/$t" >"$WORK/make-$t.log" 2>&1) || {
    touch "$MAKE_FAILED"
    tail -n 40 "$WORK/make-$t.log" >&2
    die "building $t failed; full log: $WORK/make-$t.log"
  }
  rm -f "$MAKE_FAILED"
  [[ -x "$SRC/_output/bin/$t" ]] || die "make succeeded but $SRC/_output/bin/$t is missing; see $WORK/make-$t.log"
  done_step
done

# ---- 5. install into the cache --------------------------------------------
step 'copy binaries into the cache'
NEW_BIN="$KUBE_CACHE/bin.new"
rm -rf "$NEW_BIN"
mkdir -p "$NEW_BIN"
for t in "${TARGETS[@]}"; do
  cp "$SRC/_output/bin/$t" "$NEW_BIN/$t"
  "$NEW_BIN/$t" --version >/dev/null || die "$NEW_BIN/$t does not run"
done
rm -rf "$BIN"
mv "$NEW_BIN" "$BIN"
{
  echo "$RECIPE"
  echo "$("$BIN/kube-apiserver" --version), source $SRC_VERSION, $GO_VERSION, built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$BIN/STAMP.tmp"
mv "$BIN/STAMP.tmp" "$BIN/STAMP"
done_step

if [[ $PRUNE == 1 ]]; then
  step 'prune source tree and Go build cache'
  rm -rf "$WORK"
  done_step
fi

TOTAL=$(awk -v a="$T_ALL" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log 'timings:'
for line in "${TIMINGS[@]}"; do log "  $line"; done
log "  $(printf '%-44s %7s s' total "$TOTAL")"
log "ready: $BIN ($(sed -n 2p "$BIN/STAMP"))"
}

main "$@"
