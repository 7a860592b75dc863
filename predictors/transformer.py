"""Entry point: ``python -m predictors.transformer --model_name recommender --predictor_host
<host:port> --predictor_protocol v2 --model_dir <bundle>`` (or ``--collocated``: no predictor
hop, the transformer holds the recommender itself).

Serves ``<model_name>`` (recommendations), ``events`` (feedback) and ``<model_name>-info``.
Argument parsing happens only here (KServe's parser extended).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    """KServe's model-server parser with the transformer's options."""
    from kserve import model_server

    from predictors.server import add_request_logs_argument, add_trending_argument

    parser = argparse.ArgumentParser(parents=[model_server.parser], conflict_handler="resolve")
    parser.add_argument("--model_dir", default=None, help="Model bundle directory (popularity fallback, titles)")
    parser.add_argument("--model_uri", default=None, help="models:/recommender@champion (resolved through MLflow)")
    parser.add_argument("--feature_source", choices=("feast", "bundle"), default="feast",
                        help="feast: Feast online store (SQLite, or Redis with REDIS_URL); "
                             "bundle: the bundle's users.parquet in memory")
    parser.add_argument("--materialize", choices=("auto", "always", "never"), default="auto",
                        help="auto: push the bundle's users to the online store when they are not there")
    parser.add_argument("--no_cache", action="store_true", help="Disable the Redis result cache even with REDIS_URL")
    parser.add_argument("--collocated", action="store_true",
                        help="Hold the recommender in this process (no predictor hop)")
    parser.add_argument("--ranker_threads", type=int, default=1)
    parser.add_argument("--events_model_name", default="events")
    parser.add_argument("--cache_prefix", default=None,
                        help="Redis key prefix of the result cache (default CACHE_PREFIX)")
    parser.add_argument("--torch_threads", type=int, default=1, help="torch intra-op threads (1: one user per request)")
    add_trending_argument(parser)
    add_request_logs_argument(parser)
    return parser


def features_factory(args: argparse.Namespace, model_dir: str | None) -> Callable[[], Any]:
    """Builds the online-feature source at load time (Feast, or the bundle's user table)."""
    from predictors.user_features import BundleFeatures, FeastFeatures
    from recsys.artifacts.bundle import read_manifest
    from recsys.config import get_settings

    s = get_settings()
    # The model version's own history length (what its user tower was trained on).
    manifest_settings = read_manifest(model_dir).get("settings", {}) if model_dir else {}
    history_len = int(manifest_settings.get("history_len", s.history_len))

    def build() -> Any:
        if args.feature_source == "bundle":
            return BundleFeatures(model_dir, history_len)
        return FeastFeatures(model_dir, history_len, args.materialize, repo_path=s.feast_repo_path,
                             redis_url=s.redis_url, project=s.feast_project)

    return build


def main() -> None:
    import torch
    from kserve import ModelServer
    from kserve.predictor_config import PredictorConfig

    from predictors import server_metrics as m
    from predictors.cache import ResultCache
    from predictors.events_model import EventsModel
    from predictors.predictor_model import InfoModel
    from predictors.server import (
        configure_logging,
        freeze_loaded_heap,
        install_error_handlers,
        load_or_exit,
        model_dir_or_exit,
        router_or_exit,
        settings_or_exit,
    )
    from predictors.spool import EventSpool
    from predictors.transformer_model import RecommenderTransformer
    from recsys.online.event_log import open_log

    parser = build_parser()
    args, _ = parser.parse_known_args()
    if not args.collocated and not args.predictor_host:
        parser.error("--predictor_host is required unless --collocated")
    torch.set_num_threads(max(1, args.torch_threads))
    s = settings_or_exit()
    logging.getLogger().setLevel(s.log_level)
    m.init_server("transformer")
    model_dir = model_dir_or_exit(args.model_dir, args.model_uri)
    router = router_or_exit(s, args.collocated)
    cache = (ResultCache(s.redis_url, s.cache_ttl_seconds, prefix=args.cache_prefix or s.cache_prefix,
                         timeout=s.cache_timeout_seconds)
             if s.redis_url and not args.no_cache else None)
    event_log = open_log(s.redis_url, s.runs_dir, stream=s.event_stream)
    model = RecommenderTransformer(args.model_name, model_dir, features_factory(args, model_dir), cache,
                                   collocated=args.collocated, ranker_threads=args.ranker_threads, settings=s,
                                   event_log=event_log, router=router)
    load_or_exit(model)
    if model.engine is not None and args.trending == "feast":
        from predictors.trending import attach_trending

        attach_trending(model.engine, s)
    events = EventsModel(args.events_model_name, model, EventSpool(s.spool_path(), s.spool_max_bytes))
    events.load()
    info = InfoModel(f"{args.model_name}-info", model_dir)
    info.load()
    config = None
    if not args.collocated:
        config = PredictorConfig(args.predictor_host, args.predictor_protocol, args.predictor_use_ssl,
                                 max(1, int(round(s.predictor_timeout_seconds))), 0, args.enable_predictor_health_check)
    install_error_handlers("transformer", s.max_request_bytes)
    server = ModelServer(predictor_config=config,
                         enable_latency_logging=args.request_logs and args.enable_latency_logging)
    configure_logging(s.log_level, args.request_logs)
    freeze_loaded_heap()
    server.start([model, events, info])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
