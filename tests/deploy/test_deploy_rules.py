"""Alert rules: promtool check rules on every rendered set, promtool unit tests of each alert."""

from __future__ import annotations

from pathlib import Path

import yaml

import deploytool

HERE = Path(__file__).parent


def rule_files(rendered) -> list[Path]:
    return sorted((rendered["_out"] / "rules").glob("*.rules.yaml"))


def test_promtool_check_rules(rendered):
    files = rule_files(rendered)
    assert len(files) >= 3  # default, collocated, prod (minimal has rules off)
    out = deploytool.run([deploytool.tool("promtool"), "check", "rules", *map(str, files)])
    assert "7 rules found" in out


def test_required_alerts_present(rendered):
    groups = yaml.safe_load((rendered["_out"] / "rules" / "recommender-default.rules.yaml").read_text())
    alerts = {r["alert"] for g in groups["groups"] for r in g["rules"]}
    assert alerts == {"RecommenderP99LatencyOverBudget", "RecommenderHighErrorRate",
                      "RecommenderHighFallbackRate", "RecommenderFeatureSkew", "RecommenderRedisDown",
                      "RecommenderConsumerLagging", "RecommenderConsumerDown"}


def test_promtool_unit_tests(rendered, tmp_path):
    spec = yaml.safe_load((HERE / "rules_test.yaml").read_text())
    rules = tmp_path / "rules.yaml"
    rules.write_text((rendered["_out"] / "rules" / "recommender-default.rules.yaml").read_text())
    spec["rule_files"] = [str(rules)]
    test_file = tmp_path / "rules_test.yaml"
    test_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = deploytool.run([deploytool.tool("promtool"), "test", "rules", str(test_file)])
    assert "SUCCESS" in out
