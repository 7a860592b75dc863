"""A/B experiment configuration and per-user assignment."""

import json

import numpy as np
import pytest

from recsys.online.experiment import ExperimentError, parse_experiment

ARMS = [{"name": "control", "model": "champion", "predictor_host": "a:80", "share": 0.7},
        {"name": "treatment", "model": "challenger", "predictor_host": "b:80", "share": 0.3}]


def test_assignment_is_a_stable_salted_hash_that_honours_the_shares():
    exp = parse_experiment(json.dumps({"id": "exp-1", "arms": ARMS}))
    users = np.arange(20_000)
    arms = [exp.assign(int(u)).name for u in users]
    assert arms == [parse_experiment({"id": "exp-1", "arms": ARMS}).assign(int(u)).name for u in users]  # restarts
    share = arms.count("treatment") / len(arms)
    assert abs(share - 0.3) < 3 * np.sqrt(0.3 * 0.7 / len(arms))  # within sampling error
    other = parse_experiment({"id": "exp-2", "arms": ARMS})
    moved = np.mean([a != other.assign(int(u)).name for u, a in zip(users, arms)])
    assert 0.3 < moved < 0.5  # another experiment salts differently: assignments are independent (2*0.7*0.3)
    assert exp.control.name == "control"


@pytest.mark.parametrize(("change", "message"), [
    ({"arms": [{**ARMS[0], "share": 0.5}, ARMS[1]]}, "shares sum to 0.8, not 1"),
    ({"arms": [ARMS[0], {**ARMS[1], "name": "control"}]}, "duplicate name"),
    ({"arms": [ARMS[0], {**ARMS[1], "predictor_host": "a:80"}]}, "duplicate predictor_host"),
    ({"arms": [ARMS[0]]}, "arms"),
    ({"id": "has space"}, "id"),
    ({"arms": [ARMS[0], {**ARMS[1], "shar": 0.3}]}, "arms.1"),
])
def test_bad_configuration_is_named(change, message):
    with pytest.raises(ExperimentError, match=message):
        parse_experiment({"id": "e", "arms": ARMS, **change})


def test_configuration_from_a_file_and_bad_json(tmp_path):
    f = tmp_path / "exp.json"
    f.write_text(json.dumps({"id": "e", "arms": ARMS}))
    assert parse_experiment(f"@{f}").id == "e"
    with pytest.raises(ExperimentError, match="cannot read"):
        parse_experiment(f"@{tmp_path / 'missing.json'}")
    with pytest.raises(ExperimentError, match="not valid JSON"):
        parse_experiment("{id: e}")


def test_an_arm_whose_model_the_registry_lacks_is_refused(local_state):
    from recsys.online.experiment import resolve_arm_versions

    with pytest.raises(ExperimentError, match="arm 'control': model 'champion' is not in the registry"):
        resolve_arm_versions(parse_experiment({"id": "e", "arms": ARMS}))
