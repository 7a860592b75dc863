# syntax=docker/dockerfile:1
# One image for the whole project: every KFP component and both KServe servers.
#
# Entrypoints (all `python -m ...`, WORKDIR /app, the project installed in /opt/venv):
#   KServe predictor    python -m predictors.predictor   --model_name recommender --model_dir /mnt/models --http_port 8080 --grpc_port 8081
#   KServe transformer  python -m predictors.transformer --model_name recommender --predictor_host HOST:PORT --predictor_protocol v2 --model_dir /mnt/models --http_port 8080 --grpc_port 8081
#   KFP components      python -m kfp.dsl.executor_main ...   (command written by the KFP compiler;
#                       modules components/{ingest,features,train_two_tower,build_index,train_ranker,
#                       evaluate,register,materialize,skew}.py, importable from /app)
# Nothing is installed at run time (air-gapped clusters): components carry no packages_to_install.
#
# Build:  docker build -t recommender:$(git rev-parse --short HEAD) .

ARG PYTHON_IMAGE=python:3.11-slim
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# ---------- builder: resolve the pinned dependencies into a venv ----------
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first (cached layer): the exact pins of pyproject.toml.
COPY pyproject.toml ./
# torch==2.13.0 comes from the CPU-only index (the PyPI wheel drags in GBs of CUDA libraries).
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==2.13.0" \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; assert not torch.cuda.is_available()"

# Then the project itself (no deps: they are all above, pinned).
COPY . .
RUN test -f README.md || echo "movielens-recommender" > README.md \
 && pip install --no-deps . \
 && pip check

# ---------- runtime: slim, non-root ----------
FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: OpenMP runtime used by LightGBM and FAISS wheels. gcc + libc6-dev: the predictor
# compiles the ranker's trees at load time (tl2cgen; without them it serves with LightGBM).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 app \
 && useradd --uid 1000 --gid 1000 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The source tree as the build context gave it (.dockerignore drops local state), so the
# packages (recsys, components, predictors, pipelines) and the Feast repo import from /app.
COPY --from=builder --chown=1000:1000 /src /app
# HOME and caches on /tmp: the pod runs with a read-only root filesystem and an emptyDir /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    FEAST_REPO_PATH=/app/feature_repo
USER 1000:1000
EXPOSE 8080 8081
# Default: the predictor; the InferenceService and KFP set their own command/args.
CMD ["python", "-m", "predictors.predictor", "--model_name", "recommender", "--model_dir", "/mnt/models", "--http_port", "8080", "--grpc_port", "8081"]
