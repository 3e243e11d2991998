"""Generate cohort version 2 and load it for the `synthetic` dataset cards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from bench.data import DatasetBundle, Patient, Visit, build_vocabs
from bench.prep.synthetic_cohort import PROFILE_FIELDS, SyntheticParams, load_built_in
from bench.prep.synthetic_v2.knowledge import CohortKnowledge, load_cohort_knowledge
from bench.prep.synthetic_v2.oracle import PrescribingOracle
from bench.prep.synthetic_v2.patients import Context, draw_patient
from bench.prep.synthetic_v2.prescribing import Switches
from bench.registry import DatasetCard
from bench.splits import split_patients

GENERATOR_VERSION = 2
FIRST_ADMISSION = 100000


@dataclass(frozen=True)
class SyntheticV2Params(SyntheticParams, Switches):
    """Cohort size and seed (as version 1) and the mechanism switches (`--prep-set interactions=false`, ...)."""

    @property
    def switches(self) -> Switches:
        return Switches(**{f.name: getattr(self, f.name) for f in fields(Switches)})


def default_split_held_out(n_patients: int) -> set[int]:
    """Patient ids (1..n) in validation or test of the default split (random, split seed 0, 8:1:1):
    the only patients whose visits may carry the tail codes kept unseen in training."""
    split = split_patients([Patient(pid, ()) for pid in range(1, n_patients + 1)], "random", 0, "8:1:1")
    return {p.id for p in split.valid + split.test}


def generate(params: SyntheticV2Params = SyntheticV2Params(), name: str = "synthetic") -> DatasetBundle:
    """A deterministic version-2 cohort (patient ids 1..n); its `generator` field holds the oracle."""
    ck = load_cohort_knowledge()
    rng = np.random.default_rng(params.seed)
    ctx = Context.of(rng, ck, params.switches)
    held_out = default_split_held_out(params.n_patients)
    records = [(pid, draw_patient(rng, ctx, pid in held_out)) for pid in range(1, params.n_patients + 1)]
    bundle = _bundle(ck, records, params, name)
    oracle = PrescribingOracle(seed=params.seed, drugs=ck.kb.drugs, prescriber=ctx.prescriber,
                               p_drug={v.admission_id: r["p_drug"] for p, (_, rs) in zip(bundle.patients, records)
                                       for v, r in zip(p.visits, rs)})
    return replace(bundle, generator=oracle)


def _bundle(ck: CohortKnowledge, records: list[tuple[int, list[dict]]], params: SyntheticV2Params,
            name: str) -> DatasetBundle:
    kb = ck.kb
    patients, admission_id = [], FIRST_ADMISSION
    for pid, visits in records:
        frozen = []
        for v in visits:
            admission_id += 1
            frozen.append(Visit(admission_id=admission_id,
                                diagnoses=tuple(dict.fromkeys(ck.dx_codes[i] for i in v["dx"])),
                                procedures=tuple(dict.fromkeys(ck.proc_codes[i] for i in v["proc"])),
                                drugs=tuple(kb.drugs[i] for i in v["drugs"]),
                                profile=v["profile"], tags=frozenset(v["tags"])))
        patients.append(Patient(id=pid, visits=tuple(frozen)))
    vocabs = build_vocabs(patients)
    titles = {"diagnosis": {c: ck.dx_titles[c] for c in vocabs["diagnosis"].tokens},
              "procedure": {c: ck.proc_titles[c] for c in vocabs["procedure"].tokens},
              "drug": {c: kb.drug_names[c] for c in vocabs["drug"].tokens}}
    return DatasetBundle(
        name=name, patients=tuple(patients), vocabs=vocabs, titles=titles, ddi_pairs=ck.ddi_pairs,
        smiles={d: (s,) for d, s in sorted(kb.smiles.items())}, profile_fields=PROFILE_FIELDS,
        meta={"source": "synthetic", "generator_version": GENERATOR_VERSION, **asdict(params)})


def load_synthetic_v2(card: DatasetCard, *, data_dir: Path | None, resources: Path | None,
                      overrides: dict[str, str], cache_dir: Path | None = None,
                      step: Callable[[str], None] = lambda _: None,
                      allow_modified_resources: bool = False) -> DatasetBundle:
    """The built-in cohort, version 2: generated in seconds, so it is not cached (needs no resources)."""
    return load_built_in(card, data_dir, overrides, step, SyntheticV2Params, lambda p: generate(p, name=card.name))
