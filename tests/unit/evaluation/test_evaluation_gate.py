"""The registry gate's decision: paired users, the lower bound against the margin, the bound named."""

import numpy as np

from recsys.evaluation.gate import decide, read_gate_set


def _users(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(n) * (rng.random(n) < 0.4)  # many zeros, like per-user NDCG@10


def test_a_clearly_better_challenger_is_promoted_by_the_lower_bound():
    champion = _users()
    challenger = champion + 0.01 * (np.random.default_rng(1).random(champion.size) < 0.5)
    d = decide(challenger, champion, margin=-0.002, champion_label="champion v1")
    assert d.promoted and d.decided_by == "lower_bound" and d.diff.low > 0
    assert "lower bound" in d.reason and "champion v1" in d.reason


def test_a_clearly_worse_challenger_is_refused_by_the_upper_bound():
    champion = _users()
    d = decide(champion - 0.02 * (champion > 0), champion, margin=-0.002, champion_label="c")
    assert not d.promoted and d.decided_by == "upper_bound" and d.diff.high < -0.002


def test_noise_around_zero_that_could_hide_a_loss_is_refused():
    rng = np.random.default_rng(2)
    champion = _users(300)
    challenger = champion + rng.normal(0, 0.2, champion.size)  # noisy, small sample, no real change
    d = decide(challenger, champion, margin=-0.002, champion_label="c")
    assert d.diff.low < -0.002 < d.diff.high
    assert not d.promoted and d.decided_by == "interval_contains_margin"


def test_pairing_makes_a_small_consistent_gain_significant():
    champion = _users(3000, seed=4)
    challenger = champion + 0.002  # every user gains a little: paired, the interval is tight
    assert decide(challenger, champion, margin=0.0, champion_label="c").promoted
    # unpaired (the two arrays shuffled against each other) the same means would not be separable
    shuffled = np.random.default_rng(5).permutation(challenger)
    assert not decide(shuffled, champion, margin=0.0, champion_label="c").promoted


def test_bundles_carry_their_gate_set(bundle_dir):
    states, labels = read_gate_set(bundle_dir)
    assert len(states) == len(labels) > 0
    assert all(s.user_id in labels and labels[s.user_id] for s in states)
