"""The baselines plug-in: its models, by registry string (bench.plugins). Cheap to import."""

from __future__ import annotations

from bench.plugins import ModelEntry, Plugin

PLUGIN = Plugin(
    name="baselines",
    models=(
        ModelEntry("random", "baselines.random_scores:RandomScores",
                   "uniform random scores, a floor for tests"),
        ModelEntry("oracle", "baselines.oracle:Oracle",
                   "the generator's own prescribing probabilities: the ceiling of a synthetic cohort (v2 only)",
                   ceiling=True),
        ModelEntry("popular", "baselines.popular:Popular",
                   "the k drugs most often prescribed in training, k tuned on validation"),
        ModelEntry("logreg", "baselines.logreg:LogReg",
                   "linear multi-label model over current diagnoses, procedures and previous drugs"),
        ModelEntry("logreg-current", "baselines.logreg:LogRegCurrent",
                   "logreg over the current visit's diagnoses and procedures only (no medication history)"),
        ModelEntry("gamenet", "baselines.gamenet:GAMENet",
                   "GRUs over visits + graph memory (co-prescription GCN minus DDI GCN) + dynamic memory",
                   "Shang et al., AAAI 2019"),
        ModelEntry("safedrug", "baselines.safedrug:SafeDrug",
                   "GRUs over visits; global MPNN molecule branch x BRICS-masked local branch; controllable DDI loss",
                   "Yang et al., IJCAI 2021"),
        ModelEntry("retain", "baselines.retain:RETAIN", "two-level reverse-time attention", "Choi et al., NeurIPS 2016"),
        ModelEntry("micron", "baselines.micron:MICRON", "residual drug-set changes, add/remove rule", "Yang et al., IJCAI 2021"),
        ModelEntry("molerec", "baselines.molerec:MoleRec",
                   "GRUs over visits; GIN molecules, set-transformer substructures, molecule-substructure attention",
                   "Yang et al., WWW 2023"),
        ModelEntry("cognet", "baselines.cognet:COGNet", "generates the drug set by beam search, copying earlier visits' drugs or predicting new ones (no PRAUC)", "Wu et al., WWW 2022"),
    ),
)
