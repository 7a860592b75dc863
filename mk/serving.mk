# Online serving: KServe predictor + transformer on loopback, benchmark.
# Ports: transformer HTTP $(HTTP_PORT) / gRPC $(GRPC_PORT); predictor $(PREDICTOR_HTTP_PORT) / $(PREDICTOR_GRPC_PORT).
HTTP_PORT ?= 8080
GRPC_PORT ?= 8081
PREDICTOR_HTTP_PORT ?= 8085
PREDICTOR_GRPC_PORT ?= 8086
MODEL_DIR ?=
MODEL_URI ?= models:/recommender@champion
SERVE_ARGS ?=
# The transformer -> predictor hop: grpc-v2 (predictor's gRPC port; measured ~4x cheaper than
# REST here; the chart's collocated pod uses it too) or v2 (REST, the chart's separate-pod layout).
PREDICTOR_PROTOCOL ?= grpc-v2
BENCH_REQUESTS ?= 3000
BENCH_ARGS ?=
# Bundle source for the servers: MODEL_DIR if set, else the MLflow champion.
SERVE_MODEL := $(if $(MODEL_DIR),--model_dir $(MODEL_DIR),--model_uri $(MODEL_URI))

.PHONY: serve run benchmark-serving

serve: install ## Start predictor + transformer on loopback from the champion (or MODEL_DIR); REDIS_URL set = Redis online store + cache
	@set -e; \
	$(PY) -m predictors.predictor --model_name recommender $(SERVE_MODEL) \
	  --http_port $(PREDICTOR_HTTP_PORT) --grpc_port $(PREDICTOR_GRPC_PORT) & pred=$$!; \
	trap 'kill $$pred 2>/dev/null' EXIT INT TERM; \
	$(PY) -m predictors.transformer --model_name recommender $(SERVE_MODEL) \
	  --predictor_host 127.0.0.1:$(if $(filter grpc-v2,$(PREDICTOR_PROTOCOL)),$(PREDICTOR_GRPC_PORT),$(PREDICTOR_HTTP_PORT)) \
	  --predictor_protocol $(PREDICTOR_PROTOCOL) \
	  --http_port $(HTTP_PORT) --grpc_port $(GRPC_PORT) $(SERVE_ARGS)

run: install ## Train a champion if no model exists (make train), then serve it (main job command)
	@if [ -n "$(MODEL_DIR)" ] || $(PY) -c "from recsys.registry import resolve_bundle; resolve_bundle('champion')" >/dev/null 2>&1; then \
	  echo "run: model found, serving it"; \
	else echo "run: no champion model yet, training one (make train)"; $(MAKE) train; fi
	$(MAKE) serve

benchmark-serving: install ## Serving latency/throughput (predictor alone, transformer hop, collocated; cache off/on) -> reports/serving.{json,md}
	$(PY) scripts/benchmark_serving.py $(if $(MODEL_DIR),--model-dir $(MODEL_DIR),) --requests $(BENCH_REQUESTS) --out $(REPORTS_DIR) $(BENCH_ARGS)
