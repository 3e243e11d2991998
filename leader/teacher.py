"""LEADER(T): an LLM reads the patient prompt; a new output layer scores every drug.

Liu et al., "Large Language Model Distilled Medication Recommendation Model" (arXiv 2402.02803);
docs/leader.md#teacher. The prompt (leader/prompts.py) gets an EOS token appended; the final-layer
hidden state of the last non-pad token h [B, H] goes through Linear(H, n_drugs, bias=False) -> logits
[B, n_drugs], trained with BCE-with-logits on the multi-hot drugs. This output layer replaces text
generation, so every prediction is a drug of the vocabulary. The LLM is adapted with LoRA (peft,
r 8, alpha 32, dropout 0.1 on the q,k,v,o,gate,up,down projections); `lora=false` freezes it and
trains the output layer alone.

Training (leader/teacher_training.py): AdamW, linear decay, optimiser steps of `batch_size` x
`grad_accum` prompts for `epochs` (capped by `steps`, a wall-clock `budget` and early stopping on
validation PRAUC), the best validation checkpoint kept, through `accelerate` (one process here;
several GPUs under `accelerate launch`), fp32 on CPU (bf16 autocast where the CPU has native bf16,
`cpu_bf16`), bf16 (else fp16) autocast on a GPU. The paper's
settings: `--set steps=3000 batch_size=4 grad_accum=8 max_tokens=2048` (MIMIC-IV: steps=4000) with
base_model=PATH to LLaMA-7B on GPUs; the defaults here are sized so that smollm2-135m on `synthetic`
trains, evaluates and is timed in about half an hour on 2 CPU cores (see `TeacherConfig`).
The defaults `pooling=mean`, `head_bias=prior`, `feature_norm=center` and `head_lr` 3e-3 are not the
paper's; they were chosen on validation prompts (see `TeacherConfig`, leader/teacher_head.py).
Batches hold prompts of similar length (`bucket_batches`); `lora_layers=K` adapts the top K layers
only and caches the frozen layers' states per prompt (leader/drug_scorer.py, leader/frozen_prefix.py;
docs/leader.md#training-speed).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from bench.config import require
from bench.data import Sample
from bench.io import atomic_write_text
from bench.model_base import BaseRecommender
from bench.progress import Progress
from bench.protocol import FitReport, Resources
from leader.base_models import load_tokenizer
from leader.drug_scorer import DrugScorer, build_scorer
from leader.llm_inputs import encode_prompts, length_sorted
from leader.prompts import FittedPrompt, fit_prompts
from leader.teacher_head import FeatureNorm, HeadBias
from leader.teacher_training import parse_budget, train_teacher

# peft 0.21 still calls a transformers 5.x property that warns on every model wrap; nothing to act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
GPU_PREDICT_SCALE = 4  # device=auto on a GPU: predict_batch_size x 4 prompts per inference batch


@dataclass(frozen=True)
class TeacherConfig:
    """LoRA and optimiser settings from the paper; steps, batch and token budget sized for CPU.

    Stopping: `epochs` over the training prompts, capped by `steps` optimiser steps (0: no cap), by
    `budget` wall-clock time ("45m", "90s", "1.5h"; "" none) and by `patience` validation passes
    without a better PRAUC (0: off); validation on `valid_prompts` seeded validation samples every
    `eval_every` steps; the best validation state is kept (leader/teacher_training.py).
    CPU defaults (smollm2-135m, 2 cores, fp32): 100 steps of 4 x 2 prompts (800 training prompts,
    ~8% of synthetic's training visits; one step takes ~10-15 s on 2 idle cores) with a 384-token
    budget (oldest history lines dropped first; on synthetic the prompts average 200 tokens after
    that, 366 before) — the paper uses 3000 steps of 32 prompts up to 2048 tokens. The LoRA weights
    use `lr` 2e-4 as in the paper; `max_history` 3 as in the paper.
    The output side's defaults were chosen on VALIDATION prompts (scripts/teacher_head_choice.py,
    results/teacher-head-choice.json, docs/leader.md#output-side): `pooling=mean` over the prompt's
    tokens (the paper: `last`), `head_bias=prior` (a bias started at the training prior's logits,
    weight at zero; the paper: `none`), `feature_norm=center` (a running mean subtracted; also
    `layernorm`; the paper: `none`) and `head_lr` 3e-3 (the paper: one learning rate, 2e-4). The
    paper's output side: `--set pooling=last head_bias=none feature_norm=none head_lr=2e-4`. The speed options
    at the end: docs/leader.md#training-speed (`lora_layers` 0 keeps the paper's LoRA on every layer).
    """

    base_model: str = "smollm2-135m"
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: str = LORA_TARGETS
    lr: float = 2e-4
    head_lr: float = 3e-3
    weight_decay: float = 0.0
    epochs: int = 1
    steps: int = 100
    eval_every: int = 25
    valid_prompts: int = 200
    patience: int = 5
    budget: str = ""
    batch_size: int = 4
    grad_accum: int = 2
    max_tokens: int = 384
    max_history: int = 3
    pooling: Literal["last", "mean"] = "mean"
    head_bias: HeadBias = "prior"
    feature_norm: FeatureNorm = "center"
    padding_side: Literal["left", "right"] = "right"
    predict_batch_size: int = 16
    gradient_checkpointing: bool = False
    device: str = "auto"
    # --- training speed (docs/leader.md#training-speed) ---
    lora_layers: int = 0          # LoRA on the top K decoder layers only; 0: every layer (the paper)
    prefix_cache_mb: int = 2048   # per-prompt states of the frozen lower layers kept in memory; 0: none
    bucket_batches: int = 16      # batches of similar prompt length drawn from pools of this many; 1: random
    cpu_bf16: Literal["auto", "on", "off"] = "auto"  # bf16 autocast on CPU; auto: where the CPU has bf16
    # after fit, write the training samples' features to the feature cache while the frozen-layer cache
    # is warm (leader/feature_cache.py): a student on the same split and protocol then reads them
    store_train_features: bool = False

    def __post_init__(self) -> None:
        checks = {"lora_r >= 1": self.lora_r >= 1, "lora_alpha > 0": self.lora_alpha > 0,
                  "0 <= lora_dropout < 1": 0 <= self.lora_dropout < 1, "lr > 0": self.lr > 0, "head_lr > 0": self.head_lr > 0,
                  "weight_decay >= 0": self.weight_decay >= 0, "epochs >= 1": self.epochs >= 1,
                  "steps >= 0 (0: no cap)": self.steps >= 0, "eval_every >= 1": self.eval_every >= 1,
                  "valid_prompts >= 1": self.valid_prompts >= 1, "patience >= 0 (0: off)": self.patience >= 0,
                  "batch_size >= 1": self.batch_size >= 1, "grad_accum >= 1": self.grad_accum >= 1,
                  "max_tokens >= 8": self.max_tokens >= 8, "max_history >= 0": self.max_history >= 0,
                  "pooling last|mean": self.pooling in ("last", "mean"),
                  "padding_side left|right": self.padding_side in ("left", "right"),
                  "predict_batch_size >= 1": self.predict_batch_size >= 1,
                  "lora_targets not empty": bool(self.lora_targets.strip()),
                  "lora_layers >= 0": self.lora_layers >= 0, "prefix_cache_mb >= 0": self.prefix_cache_mb >= 0,
                  "bucket_batches >= 1": self.bucket_batches >= 1,
                  "cpu_bf16 auto|on|off": self.cpu_bf16 in ("auto", "on", "off")}
        require(checks, "leader-teacher")
        parse_budget(self.budget)  # ValueError naming the option and the expected form


class LeaderTeacher(BaseRecommender):
    name: ClassVar[str] = "leader-teacher"
    needs: ClassVar[frozenset[str]] = frozenset({"text"})
    Config = TeacherConfig
    latency_samples: ClassVar[int] = 20  # batch-1 calls take ~0.1-0.3 s each with smollm2 on CPU
    smoke_options: ClassVar[dict[str, str]] = {"base_model": "tiny-llama", "epochs": "3", "steps": "3",
                                               "batch_size": "4", "grad_accum": "1", "max_tokens": "256",
                                               "lr": "1e-3", "valid_prompts": "8"}

    def __init__(self, config: TeacherConfig, resources: Resources):
        super().__init__(config, resources)
        if resources.titles is None:
            raise ValueError("leader-teacher needs code titles (resources built with 'text')")
        self.device = torch.device(_pick_device(config.device))
        self.tokenizer = load_tokenizer(config.base_model)
        self.scorer = self._build(seed=0)
        self.checkpoints: Path | None = None  # set by the runner (bench.protocol.Resumable)

    # --- model ----------------------------------------------------------------------------------
    def _build(self, seed: int) -> DrugScorer:
        return build_scorer(self.config, self.resources.n_drugs, seed).to(self.device)

    @property
    def hidden_size(self) -> int:
        return self.scorer.head.in_features

    def fitted_prompts(self, samples: Sequence[Sample]) -> list[FittedPrompt]:
        c = self.config
        return fit_prompts(samples, self.resources.titles, self.tokenizer, c.max_tokens, c.max_history)

    def prompts(self, samples: Sequence[Sample]) -> list[str]:
        return [p.text for p in self.fitted_prompts(samples)]

    def _inputs(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = encode_prompts(self.tokenizer, texts, max_tokens=self.config.max_tokens,
                               padding_side=self.config.padding_side)
        return {k: v.to(self.device) for k, v in batch.items()}

    # --- training -------------------------------------------------------------------------------
    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport:
        """leader/teacher_training.py: epochs with validation, the best state kept, checkpoints."""
        return train_teacher(self, list(train), list(valid), seed=seed, progress=progress,
                             checkpoints=self.checkpoints, mixed_precision=_mixed_precision(self.device))

    def store_after_fit(self, train: Sequence[Sample], dataset_hash: str, cache_dir: Path | None,
                        progress: Progress) -> dict[str, float | int | str]:
        """With `store_train_features`: the training samples' features, written to the feature cache
        (`bench.protocol.StoresAfterFit`). With `lora_layers` the training prompts' frozen-layer states
        are still in memory, so this costs the top layers only; a distilling student of the same split
        and training protocol then finds them instead of running the whole LLM per prompt."""
        if not self.config.store_train_features or not train:
            return {}
        from leader.feature_cache import feature_cache_key, teacher_features

        start = time.perf_counter()
        teacher_features(self, train, dataset_hash, cache_dir, progress)
        return {"train_features": len(train), "seconds": round(time.perf_counter() - start, 1),
                "key": feature_cache_key(self, train, dataset_hash)}

    def use_checkpoints(self, folder: Path) -> None:
        """Write training checkpoints into `folder` and resume from the latest there (the runner's)."""
        self.checkpoints = folder

    # --- inference ------------------------------------------------------------------------------
    def _forward_all(self, samples: Sequence[Sample], features: bool, cached: bool = False) -> np.ndarray:
        return self._forward_texts(self.prompts(samples) if samples else [], features, cached)

    @torch.no_grad()
    def _forward_texts(self, texts: Sequence[str], features: bool, cached: bool = False) -> np.ndarray:
        """Scores (or features) in length-sorted batches; `cached`: through the frozen-layer cache
        (`DrugScorer`), for repeated passes over the same prompts (the fixed validation subset)."""
        width = self.hidden_size if features else self.resources.n_drugs
        out = np.zeros((len(texts), width), dtype=np.float32)
        if not texts:
            return out
        self.scorer.eval()
        order = length_sorted(texts)
        size = self.config.predict_batch_size * (GPU_PREDICT_SCALE if self._auto_gpu() else 1)
        with torch.autocast(self.device.type, dtype=_autocast_dtype(self.device), enabled=self.device.type == "cuda"):
            for start in range(0, len(order), size):
                rows = order[start:start + size]
                chosen = [texts[i] for i in rows]
                keys = chosen if cached else None
                batch = self._inputs(chosen)
                values = (self.scorer.features(**batch, keys=keys) if features
                          else torch.sigmoid(self.scorer(**batch, keys=keys)))
                out[rows] = values.float().cpu().numpy()
        return out

    def _auto_gpu(self) -> bool:
        """`device=auto` found a GPU: larger inference batches (and training micro-batches, see
        leader.teacher_training.batch_shape)."""
        return self.config.device == "auto" and self.device.type == "cuda"

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        """float32 [n, n_drugs]."""
        return self._forward_all(samples, features=False)

    def score_texts(self, texts: Sequence[str], cached: bool = False) -> np.ndarray:
        """float32 [n, n_drugs] for prompts already built (the validation passes build them once and
        score them `cached`)."""
        return self._forward_texts(texts, features=False, cached=cached)

    def hidden_features(self, samples: Sequence[Sample]) -> np.ndarray:
        """float32 [n, hidden]: the pooled last-layer state the output layer reads, before any
        `feature_norm` (what the student distils, docs/leader.md#distillation). With a frozen-layer
        cache (`lora_layers`) through it, as in training: a prompt's features are then the same whether
        its lower states were cached (the teacher's own process) or not (a later process)."""
        return self._forward_all(samples, features=True, cached=self.scorer.cache is not None)

    # --- state ----------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """The output layer (weight, and bias with head_bias), the feature norm's parameters or running
        mean, and with LoRA the adapter weights (the frozen base is not saved)."""
        state = {f"{part}.{k}": v.detach().cpu().numpy().copy() for part in ("head", "norm")
                 for k, v in getattr(self.scorer, part).state_dict().items()}
        if self.config.lora:
            from peft import get_peft_model_state_dict

            state |= {"adapter." + k: v.detach().cpu().numpy()
                      for k, v in get_peft_model_state_dict(self.scorer.body).items()}
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        for part in ("head", "norm"):
            getattr(self.scorer, part).load_state_dict({k.removeprefix(part + "."): torch.from_numpy(v.copy())
                                                        for k, v in state.items() if k.startswith(part + ".")})
        if self.config.lora:
            from peft import set_peft_model_state_dict

            adapter = {k.removeprefix("adapter."): torch.from_numpy(v.copy())
                       for k, v in state.items() if k.startswith("adapter.")}
            result = set_peft_model_state_dict(self.scorer.body, adapter)
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected:
                raise ValueError(f"adapter weights do not fit the base model: {unexpected[:3]}")

    def save(self, path: Path) -> None:
        """config.json + weights.safetensors (output layer and adapter); also the adapter alone as a
        peft folder (adapter/) and the output layer's drug order, for use outside this project."""
        super().save(path)
        if self.config.lora:
            self.scorer.body.save_pretrained(path / "adapter")
        (path / "adapter").mkdir(exist_ok=True)
        atomic_write_text(path / "adapter" / "drug_head_columns.json",
                          json.dumps(list(self.resources.vocabs["drug"].tokens)) + "\n")

    def n_params(self) -> int:
        """Every parameter used at inference: the LLM, the adapter and the output layer."""
        return int(sum(p.numel() for p in self.scorer.parameters()))


def _pick_device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} asked for but no GPU is visible")
    return choice


def _autocast_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _mixed_precision(device: torch.device) -> str:
    if device.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
