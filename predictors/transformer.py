"""Entry point: ``python -m predictors.transformer --model_name recommender --predictor_host
<host:port> --predictor_protocol v2 --model_dir <bundle>`` (or ``--collocated``: no predictor
hop, the transformer holds the recommender itself).

Serves ``<model_name>`` (recommendations), ``events`` (feedback) and ``<model_name>-info``.
Argument parsing happens only here (KServe's parser extended).
"""

from __future__ import annotations

import argparse
import logging


def main() -> None:
    from kserve import ModelServer, model_server
    from kserve.predictor_config import PredictorConfig

    from recsys.config import get_settings
    from predictors.artifacts import resolve_model_dir
    from predictors.cache import ResultCache
    from predictors.features import BundleFeatures, FeastFeatures
    from predictors.predictor_model import InfoModel
    from predictors.transformer_model import EventsModel, RecommenderTransformer

    parser = argparse.ArgumentParser(parents=[model_server.parser], conflict_handler="resolve")
    parser.add_argument("--model_dir", default=None, help="Model bundle directory (popularity fallback, titles)")
    parser.add_argument("--model_uri", default=None, help="models:/recommender@champion (resolved through MLflow)")
    parser.add_argument("--feature_source", choices=("feast", "bundle"), default="feast",
                        help="feast: Feast online store (SQLite, or Redis with REDIS_URL); bundle: the bundle's users.parquet in memory")
    parser.add_argument("--materialize", choices=("auto", "always", "never"), default="auto",
                        help="auto: push the bundle's users to the online store when they are not there")
    parser.add_argument("--no_cache", action="store_true", help="Disable the Redis result cache even with REDIS_URL")
    parser.add_argument("--collocated", action="store_true", help="Hold the recommender in this process (no predictor hop)")
    parser.add_argument("--ranker_threads", type=int, default=1)
    parser.add_argument("--events_model_name", default="events")
    parser.add_argument("--cache_prefix", default="recsys:rec", help="Redis key prefix of the result cache")
    parser.add_argument("--torch_threads", type=int, default=1, help="torch intra-op threads (1: one user per request)")
    from predictors.server import add_request_logs_argument, configure_request_logs, freeze_loaded_heap, install_error_handlers

    add_request_logs_argument(parser)
    args, _ = parser.parse_known_args()
    import torch

    torch.set_num_threads(max(1, args.torch_threads))
    s = get_settings()
    model_dir = resolve_model_dir(args.model_dir, args.model_uri)
    from recsys.bundle import read_manifest

    # The model version's own history length (what its user tower was trained on).
    history_len = int(read_manifest(model_dir).get("settings", {}).get("history_len", s.history_len)) if model_dir else s.history_len

    def features():
        if args.feature_source == "bundle":
            return BundleFeatures(model_dir, history_len)
        return FeastFeatures(model_dir, history_len, args.materialize, repo_path=s.feast_repo_path, redis_url=s.redis_url,
                             project=s.feast_project)

    cache = ResultCache(s.redis_url, s.cache_ttl_seconds, prefix=args.cache_prefix) if s.redis_url and not args.no_cache else None
    model = RecommenderTransformer(args.model_name, model_dir, features, cache, s.predictor_timeout_seconds,
                                   collocated=args.collocated, ranker_threads=args.ranker_threads, mmr_lambda=s.mmr_lambda)
    model.load()
    events = EventsModel(args.events_model_name, model)
    events.load()
    info = InfoModel(f"{args.model_name}-info", model_dir)
    info.load()
    config = None
    if not args.collocated:
        if not args.predictor_host:
            parser.error("--predictor_host is required unless --collocated")
        config = PredictorConfig(args.predictor_host, args.predictor_protocol, args.predictor_use_ssl,
                                 max(1, int(round(s.predictor_timeout_seconds))), 0, args.enable_predictor_health_check)
    install_error_handlers("transformer")
    server = ModelServer(predictor_config=config, enable_latency_logging=args.request_logs and args.enable_latency_logging)
    configure_request_logs(args.request_logs)
    freeze_loaded_heap()
    server.start([model, events, info])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
