"""Entry point: ``python -m predictors.predictor --model_name recommender --model_dir <bundle>``.

Argument parsing happens only here (KServe's parser extended), as in kserve's lgbserver.
"""

from __future__ import annotations

import argparse
import logging


def main() -> None:
    from kserve import ModelServer
    from kserve import model_server

    from recsys.config import get_settings
    from predictors.artifacts import resolve_model_dir
    from predictors.predictor_model import InfoModel, RecommenderPredictor

    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", default=None, help="Model bundle directory")
    parser.add_argument("--model_uri", default=None, help="models:/recommender@champion (resolved through MLflow)")
    parser.add_argument("--ranker_threads", type=int, default=1, help="LightGBM threads per request")
    parser.add_argument("--torch_threads", type=int, default=1, help="torch intra-op threads (1: one user per request)")
    from predictors.server import add_request_logs_argument, configure_request_logs, freeze_loaded_heap, install_error_handlers

    add_request_logs_argument(parser)
    args, _ = parser.parse_known_args()
    import torch

    torch.set_num_threads(max(1, args.torch_threads))
    model_dir = resolve_model_dir(args.model_dir, args.model_uri)
    settings = get_settings()
    model = RecommenderPredictor(args.model_name, model_dir, args.ranker_threads, settings.mmr_lambda)
    model.load()
    info = InfoModel(f"{args.model_name}-info", model_dir, model.engine)
    info.load()
    install_error_handlers("predictor")
    server = ModelServer(enable_latency_logging=args.request_logs and args.enable_latency_logging)
    configure_request_logs(args.request_logs)
    freeze_loaded_heap()
    server.start([model, info])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
