# Training pipeline: kfp.local run, IR YAML compile, submission to a KFP endpoint.
KFP_HOST ?=
PIPELINE_ARGS ?=
# KFP cron (six fields, seconds first) of the recurring retraining run.
SCHEDULE_CRON ?= 0 0 3 * * *

.PHONY: train pipeline-compile pipeline-run pipeline-schedule

train: install ## Run the training pipeline locally with kfp.local (DATA_DIR=... or download); prints per-step times and where bundle/MLflow/Feast went
	$(PY) -m pipelines train $(if $(DATA_DIR),--data-dir "$(DATA_DIR)",) $(PIPELINE_ARGS)

pipeline-compile: install ## Compile the training pipeline to pipelines/training_pipeline.yaml (golden-tested)
	$(PY) -m pipelines compile

pipeline-run: install ## Submit the training pipeline to a KFP endpoint (KFP_HOST=http://host:port; exit 2 if unset or unreachable)
	@$(PY) -m pipelines run --host "$(KFP_HOST)" $(if $(DATA_DIR),--data-dir "$(DATA_DIR)",) $(PIPELINE_ARGS)

pipeline-schedule: install ## Create a KFP recurring run that retrains on the event archive (KFP_HOST=..., SCHEDULE_CRON="0 0 3 * * *", EVENTS_DIR=/data/events/archive)
	@$(PY) -m pipelines schedule --host "$(KFP_HOST)" --cron "$(SCHEDULE_CRON)" $(if $(EVENTS_DIR),--events-dir "$(EVENTS_DIR)",) \
	  $(if $(DATA_DIR),--data-dir "$(DATA_DIR)",) $(PIPELINE_ARGS)
