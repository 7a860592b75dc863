# Online serving: KServe predictor + transformer on loopback, benchmark.
# Ports: transformer HTTP $(HTTP_PORT) / gRPC $(GRPC_PORT); predictor $(PREDICTOR_HTTP_PORT) / $(PREDICTOR_GRPC_PORT).
HTTP_PORT ?= 8080
GRPC_PORT ?= 8081
PREDICTOR_HTTP_PORT ?= 8085
PREDICTOR_GRPC_PORT ?= 8086
MODEL_DIR ?=
MODEL_URI ?= models:/recommender@champion
SERVE_ARGS ?=
# The transformer -> predictor hop: grpc-v2 (the predictor's gRPC port: the cheaper hop in
# make benchmark-serving, docs/serving.md; the chart's collocated pod uses it too) or v2 (REST,
# the chart's separate-pod layout).
PREDICTOR_PROTOCOL ?= grpc-v2
BENCH_REQUESTS ?= 3000
BENCH_ARGS ?=
# Bundle source for the servers: MODEL_DIR if set, else the MLflow champion.
SERVE_MODEL := $(if $(MODEL_DIR),--model_dir $(MODEL_DIR),--model_uri $(MODEL_URI))

.PHONY: serve run benchmark-serving benchmark-chaos benchmark-events events-export loop-demo

CONSUMER_METRICS_PORT ?= 9108

serve: install ## Start predictor + transformer + event consumer on loopback from the champion (or MODEL_DIR); REDIS_URL set = Redis online store, cache and event log
	@set -e; \
	$(PY) -m predictors.predictor --model_name recommender $(SERVE_MODEL) \
	  --http_port $(PREDICTOR_HTTP_PORT) --grpc_port $(PREDICTOR_GRPC_PORT) & pred=$$!; \
	$(PY) -m recsys.online.consumer $(SERVE_MODEL) --metrics-port $(CONSUMER_METRICS_PORT) & cons=$$!; \
	trap 'kill $$pred $$cons 2>/dev/null' EXIT INT TERM; \
	$(PY) -m predictors.transformer --model_name recommender $(SERVE_MODEL) \
	  --predictor_host 127.0.0.1:$(if $(filter grpc-v2,$(PREDICTOR_PROTOCOL)),$(PREDICTOR_GRPC_PORT),$(PREDICTOR_HTTP_PORT)) \
	  --predictor_protocol $(PREDICTOR_PROTOCOL) \
	  --http_port $(HTTP_PORT) --grpc_port $(GRPC_PORT) $(SERVE_ARGS)

run: install ## Train a champion if no model exists (make train), then serve it (main job command)
	@if [ -n "$(MODEL_DIR)" ] || $(PY) -c "from recsys.artifacts.registry import resolve_bundle; resolve_bundle('champion')" >/dev/null 2>&1; then \
	  echo "run: model found, serving it"; \
	else echo "run: no champion model yet, training one (make train)"; $(MAKE) train; fi
	$(MAKE) serve

benchmark-serving: install ## Serving latency/throughput (predictor alone, transformer hop, collocated; cache off/on) -> reports/serving.{json,md}
	$(PY) scripts/benchmark_serving.py $(if $(MODEL_DIR),--model-dir $(MODEL_DIR),) --requests $(BENCH_REQUESTS) --out $(REPORTS_DIR) $(BENCH_ARGS)

CHAOS_SECONDS ?= 60
benchmark-chaos: install ## Redis killed / restarted empty / predictor killed under load (own redis-server, own servers) -> reports/chaos.{json,md}
	$(PY) scripts/benchmark_chaos.py $(if $(MODEL_DIR),--model-dir $(MODEL_DIR),) --seconds $(CHAOS_SECONDS) --out $(REPORTS_DIR)

OUT ?= events.parquet
events-export: install ## Every logged event (archive + what the log still holds) -> OUT=file.parquet, one row per event_id
	$(PY) -m recsys.online.export --out $(OUT)

EVENTS_SECONDS ?= 60
benchmark-events: install ## The event log's Redis killed and restarted under load: every acknowledged event archived once -> reports/events.{json,md}
	$(PY) scripts/benchmark_events.py $(if $(MODEL_DIR),--model-dir $(MODEL_DIR),) --seconds $(EVENTS_SECONDS) --out $(REPORTS_DIR)

LOOP_USERS ?= 200
loop-demo: install ## The feedback loop measured: replay a time slice as events, online features change, retrain on the archive -> reports/loop.{json,md}
	$(PY) scripts/loop_demo.py $(if $(DATA_DIR),--data-dir "$(DATA_DIR)",) --users $(LOOP_USERS) --out $(REPORTS_DIR)

# ---- measured rollouts (docs/rollout.md) ---------------------------------------------------
AB_ARGS ?=
AB_SIM_ARGS ?=
.PHONY: ab-report ab-simulate

ab-report: install ## A/B outcome report from the logged events -> reports/ab-report.{json,md,png} (AB_ARGS=--archive DIR)
	$(PY) scripts/ab_report.py --out $(REPORTS_DIR) $(AB_ARGS)

ab-simulate: install ## Simulated users drive a live two-arm transformer: A/B power and A/A false positives -> reports/ab-simulation.json
	$(PY) scripts/ab_simulate.py --out $(REPORTS_DIR) $(AB_SIM_ARGS)
