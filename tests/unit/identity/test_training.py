"""Weight estimation: EM recovers known m from comparison levels drawn from a known model."""

from __future__ import annotations

import numpy as np

from reconciler.identity.resolve import FIELDS, WeightTable
from reconciler.identity.training import FIELD_NAMES, expectation_maximisation, frequencies


def draw(rng: np.random.Generator, probabilities: dict[str, np.ndarray], n: int) -> np.ndarray:
    return np.stack([rng.choice(len(probabilities[f]), size=n, p=probabilities[f])
                     for f in FIELD_NAMES], axis=1)


def test_em_recovers_m_and_the_match_share() -> None:
    rng = np.random.default_rng(1)

    def dirichlet(concentration: float) -> dict[str, np.ndarray]:
        return {f: rng.dirichlet(np.full(len(levels), concentration))
                for f, levels in FIELDS.items()}

    m_true, u_true = dirichlet(0.5), dirichlet(2.0)
    matches, non_matches = draw(rng, m_true, 30_000), draw(rng, u_true, 70_000)
    levels = np.concatenate([matches, non_matches])
    u = frequencies(non_matches)  # u known, as from random pairs
    start = {f: np.full(len(lv), 1 / len(lv)) for f, lv in FIELDS.items()}
    m, share, rounds = expectation_maximisation(levels, u, start, share=0.5)
    assert abs(share - 0.3) < 0.02
    for f in FIELD_NAMES:
        assert np.abs(m[f] - m_true[f]).max() < 0.03, f
    assert rounds > 1


def test_a_weight_table_round_trips_through_json() -> None:
    table = WeightTable(prior=-3.0, weights={("name", "same"): 8.5, ("passport", "same"): 12.0})
    assert WeightTable.from_json(table.to_json()) == table
