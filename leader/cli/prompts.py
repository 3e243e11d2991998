"""`bench prompts`: show what LEADER's LLM reads (docs/leader.md#prompts) and how long it is in tokens.

Printed prompts: test patients of the seeded random split (8:1:1), each with its LAST visit as the
current one (protocol `last`, what LEADER evaluates), picked at random with `--seed`; the first one
shown is a multi-visit patient when the test split has one. They are shown as the model reads them:
cut to the token budget (oldest history line first).
Statistics: every visit of every patient of the dataset (protocol `every`, what training uses).
"""

from __future__ import annotations

import typer
from rich.table import Table

from bench.cli.console import stdout_console, user_errors
from bench.cli.options import AllowModified, DataDir, Dataset, PrepSet, Resources, Seed, load_dataset, with_help
from bench.errors import UserError

PromptSeed = with_help(Seed, "seeds the split and the choice of printed prompts")


def prompts(
    dataset: Dataset,
    n: int = typer.Option(3, "--n", help="number of prompts to print"),
    tokenizer: str = typer.Option("smollm2-135m", help="smollm2-135m | tiny-llama | a local Hugging Face model folder"),
    max_tokens: int = typer.Option(2048, help="token budget per prompt, EOS included (LEADER: 2048)"),
    max_history: int = typer.Option(3, help="at most this many earlier visits in a prompt (LEADER: 3)"),
    seed: PromptSeed = 0,
    data_dir: DataDir = None,
    resources: Resources = None,
    allow_modified: AllowModified = False,
    prep_set: PrepSet = None,
) -> None:
    """Print N of DATASET's LEADER prompts and token-length statistics over all its samples.

    Example: bench prompts --dataset synthetic --n 3 --tokenizer smollm2-135m --max-tokens 2048
    """
    with user_errors():
        if n < 0 or max_tokens < 1 or max_history < 0:
            raise UserError("--n and --max-history must be >= 0 and --max-tokens >= 1")
        from bench.runner import check_seed

        check_seed(seed)
        from bench.data import make_samples
        from bench.splits import split_patients
        from leader.base_models import load_tokenizer
        from leader.prompts import fit_prompts

        tok = load_tokenizer(tokenizer)
        bundle = load_dataset(dataset, data_dir, resources, prep_set, allow_modified)
        shown = pick_samples(make_samples(split_patients(bundle.patients, "random", seed).test, "last"), n, seed)
        fitted_shown = fit_prompts(shown, bundle.titles, tok, max_tokens, max_history)
        fitted_all = fit_prompts(make_samples(bundle.patients, "every"), bundle.titles, tok, max_tokens, max_history)
    console = stdout_console()
    for sample, fitted in zip(shown, fitted_shown):
        console.rule(f"patient {sample.patient.id}, visit {sample.index + 1} of {len(sample.patient.visits)}: "
                     f"{fitted.n_tokens} tokens, {fitted.n_history_dropped} history line(s) dropped"
                     + (", OVER BUDGET" if fitted.over_budget else ""))
        console.print(fitted.text, markup=False, highlight=False, soft_wrap=True)
    console.print(stats_table(fitted_all, max_tokens, f"{bundle.name}: token lengths under {tokenizer} (protocol every, "
                                          f"EOS included, max_tokens {max_tokens}, max_history {max_history})"))


def pick_samples(samples: list, n: int, seed: int) -> list:
    """`n` samples in a seeded random order, a multi-visit one first when there is one."""
    import numpy as np

    order = [samples[i] for i in np.random.default_rng(seed).permutation(len(samples))]
    multi = next((s for s in order if not s.is_single_visit), None)
    if multi is not None:
        order = [multi] + [s for s in order if s is not multi]
    return order[:n]


def stats_table(fitted: list, max_tokens: int, title: str) -> Table:
    """Token-length statistics before and after dropping history lines to fit the budget."""
    import numpy as np

    table = Table(title=title)
    table.add_column("statistic")
    table.add_column("before truncation", justify="right")
    table.add_column("after truncation", justify="right")
    before = np.array([f.n_tokens_full for f in fitted] or [0])
    after = np.array([f.n_tokens for f in fitted] or [0])
    table.add_row("samples", f"{len(fitted):,}", f"{len(fitted):,}")
    table.add_row("mean tokens", f"{before.mean():.1f}", f"{after.mean():.1f}")
    for label, q in (("p50 tokens", 50), ("p95 tokens", 95)):
        table.add_row(label, f"{np.percentile(before, q):.0f}", f"{np.percentile(after, q):.0f}")
    table.add_row("max tokens", f"{before.max():,}", f"{after.max():,}")
    over_before = sum(f.n_tokens_full > max_tokens for f in fitted)
    table.add_row("over budget", f"{over_before:,}", f"{sum(f.over_budget for f in fitted):,}")
    dropped = sum(f.n_history_dropped for f in fitted)
    cut = sum(f.n_history_dropped > 0 for f in fitted)
    table.add_row("history lines dropped", "", f"{dropped:,} (in {cut:,} samples)")
    return table
