"""Base class for recommenders whose state is a torch module."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from bench.data import Sample
from bench.model_base import BaseRecommender
from bench.protocol import Resources


class TorchRecommender(BaseRecommender):
    """Subclasses build `self.module` in `build_module` and implement `logits(samples)` ([n, n_drugs])."""

    predict_batch_size: int = 512

    def __init__(self, config, resources: Resources):
        super().__init__(config, resources)
        self.module = self.build_module()

    def build_module(self) -> torch.nn.Module:
        raise NotImplementedError

    def logits(self, samples: Sequence[Sample]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        """float32 [n, n_drugs]: sigmoid of the logits, computed in batches."""
        self.module.eval()
        parts = [torch.sigmoid(self.logits(samples[i:i + self.predict_batch_size])).numpy()
                 for i in range(0, len(samples), self.predict_batch_size)]
        if not parts:
            return np.zeros((0, self.resources.n_drugs), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})

    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.module.parameters()))


class ParameterCache:
    """A value computed from a module's weights (e.g. every drug's molecule encoding), reused at
    inference until the module's parameters or buffers are replaced or changed in place through
    autograd-visible ops (an optimiser step, load_state_dict): those bump the tensors' version
    counters. Writes through `.data` and dtype/device moves do NOT, so call `clear()` after those.
    Tensors are held by weak reference, so a freed module whose ids are reused never matches."""

    def __init__(self) -> None:
        self._refs: tuple[weakref.ref, ...] = ()
        self._versions: tuple[int, ...] = ()
        self._value: Any = None

    def get(self, module: torch.nn.Module, compute: Callable[[], Any]) -> Any:
        tensors = (*module.parameters(), *module.buffers())
        versions = tuple(t._version for t in tensors)
        same = (len(tensors) == len(self._refs) and versions == self._versions
                and all(ref() is t for ref, t in zip(self._refs, tensors)))
        if not same:
            self._value = compute()
            self._refs, self._versions = tuple(weakref.ref(t) for t in tensors), versions
        return self._value

    def clear(self) -> None:
        self._refs, self._versions, self._value = (), (), None


class EncoderCache:
    """Mixin for a model whose `self.encoder` keeps per-visit input encodings and forgets them with
    `clear()`: it makes the model a bench.protocol.InputCache."""

    encoder: Any

    def clear_input_cache(self) -> None:
        """Forget the visits' cached code indices (bench.protocol.InputCache)."""
        self.encoder.clear()
