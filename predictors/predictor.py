"""Entry point: ``python -m predictors.predictor --model_name recommender --model_dir <bundle>``.

Argument parsing happens only here (KServe's parser extended), as in kserve's lgbserver.
"""

from __future__ import annotations

import argparse
import logging


def build_parser() -> argparse.ArgumentParser:
    """KServe's model-server parser with the predictor's options."""
    from kserve import model_server

    from predictors.server import add_request_logs_argument, add_trending_argument

    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", default=None, help="Model bundle directory")
    parser.add_argument("--model_uri", default=None, help="models:/recommender@champion (resolved through MLflow)")
    parser.add_argument("--ranker_threads", type=int, default=1, help="LightGBM threads per request")
    parser.add_argument("--torch_threads", type=int, default=1, help="torch intra-op threads (1: one user per request)")
    add_trending_argument(parser)
    add_request_logs_argument(parser)
    return parser


def main() -> None:
    import torch
    from kserve import ModelServer

    from predictors import server_metrics as m
    from predictors.predictor_model import InfoModel, RecommenderPredictor
    from predictors.protocol import Limits
    from predictors.server import (
        configure_logging,
        freeze_loaded_heap,
        install_error_handlers,
        load_or_exit,
        model_dir_or_exit,
        settings_or_exit,
    )
    from predictors.trending import attach_trending

    args, _ = build_parser().parse_known_args()
    torch.set_num_threads(max(1, args.torch_threads))
    settings = settings_or_exit()
    logging.getLogger().setLevel(settings.log_level)
    m.init_server("predictor")
    model_dir = model_dir_or_exit(args.model_dir, args.model_uri)
    model = RecommenderPredictor(args.model_name, model_dir, args.ranker_threads, settings.mmr_lambda,
                                 Limits.from_settings(settings))
    load_or_exit(model)
    if args.trending == "feast":
        attach_trending(model.engine, settings)
    info = InfoModel(f"{args.model_name}-info", model_dir, model.engine)
    info.load()
    install_error_handlers("predictor", settings.max_request_bytes)
    server = ModelServer(enable_latency_logging=args.request_logs and args.enable_latency_logging)
    configure_logging(settings.log_level, args.request_logs)
    freeze_loaded_heap()
    server.start([model, info])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
