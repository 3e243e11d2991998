"""The generator's own prescribing probabilities, kept beside a version-2 cohort for the `oracle` model.

For each visit the generator stores the independent per-class probabilities it drew from
(`visit_probabilities`); interaction avoidance and the random extra classes come after that draw, so
the final probability of each class has no closed form. `probabilities` estimates it by re-drawing the
visit's prescriptions `draws` times from the same state with a generator seeded by (cohort seed,
admission id): the same call always gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench.errors import UserError
from bench.prep.synthetic_v2.prescribing import Prescriber

DRAWS = 4000  # standard error of an estimated probability <= 0.008


@dataclass(frozen=True)
class PrescribingOracle:
    """p_drug per admission id (float32 [n_classes] in `drugs` order) and the prescriber of the cohort."""

    seed: int
    drugs: tuple[str, ...]
    p_drug: Mapping[int, np.ndarray]
    prescriber: Prescriber

    def probabilities(self, admission_ids: Sequence[int], drugs: Sequence[str], draws: int = DRAWS) -> np.ndarray:
        """float [n, len(drugs)]: P(class given in the visit | the generator's latent state), estimated
        from `draws` seeded re-draws per visit; columns in the order of `drugs`."""
        column = {d: i for i, d in enumerate(self.drugs)}
        missing = [d for d in drugs if d not in column]
        if missing:
            raise UserError(f"oracle: drug classes {missing[:5]} are not in the generator's table")
        order = np.array([column[d] for d in drugs], dtype=int)
        out = np.zeros((len(admission_ids), len(drugs)))
        for row, admission in enumerate(admission_ids):
            if admission not in self.p_drug:
                raise UserError(f"oracle: admission {admission} is not a visit of this generated cohort")
            rng = np.random.default_rng([self.seed, int(admission)])
            taken, _ = self.prescriber.draw(rng, self.p_drug[admission].astype(float), draws)
            out[row] = taken.mean(axis=0)[order]
        return out
