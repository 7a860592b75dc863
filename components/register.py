"""Register: log the run in MLflow, register the bundle as a version of `recommender`, gate `champion`."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(bundle: Input[Model], registration: Output[Artifact], gate_margin: Optional[float] = None):
    """``registration``: JSON of the RegistrationResult (version, promoted, reason, artifact URI);
    ``gate_margin`` None = GATE_MARGIN of the image's environment."""
    import json
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    from pathlib import Path

    from recsys.artifacts.registry import log_and_register

    report_file = Path(bundle.path) / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    result = log_and_register(bundle.path, report, margin=gate_margin,
                              extra_params={"kfp_bundle_uri": bundle.uri})
    Path(registration.path).write_text(json.dumps(result.to_dict(), indent=2))
    for key, value in result.to_dict().items():
        registration.metadata[key] = value if value is not None else ""
    registration.metadata["seconds"] = time.perf_counter() - t0
