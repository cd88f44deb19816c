"""``build_dataloader``: a PaddleOCR ``Train``/``Eval`` config section to a seeded, resumable DataLoader.

Advancing epochs: call ``loader.set_epoch(epoch, start_step=0)`` before iterating an epoch. It sets the
sampler's order and the dataset's random draws; iterating the loader again then yields that epoch. Workers
are started afresh for each iteration (``persistent_workers`` stays off) so they see the new epoch.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Sequence

import numpy as np
import paddle

from ocrforge.data.samplers import SAMPLERS, ShuffleBatchSampler
from ocrforge.registry import DATASETS
from ocrforge.seeding import WorkerSeeder

# Fields whose length differs between samples: kept as a list of per-sample arrays, never stacked.
RAGGED_KEYS = ("polys", "ignore_tags", "texts", "img_path", "filename")


class BatchCollator:
    """Turn a list of samples into one batch.

    A sample is a list (``KeepKeys`` output; ``field_names`` are its keep_keys) or a dict. For each field:
    equal-shape arrays and numbers are stacked into one ``(N, ...)`` array (Python floats as float32, ints as
    int64); fields named in ``ragged_keys``
    and anything that is not an array (strings, lists) stay a list of N per-sample values, so e.g. detection
    ``polys`` ``(n_i, 4, 2)`` keep their own box count per image. Unequal shapes in a field that is not
    ragged are an error naming the field.
    """

    def __init__(self, field_names: Sequence[str] = (), ragged_keys: Sequence[str] = RAGGED_KEYS):
        self.field_names = list(field_names)
        self.ragged_keys = set(ragged_keys)

    def _collate_field(self, name: str, values: list) -> Any:
        if name in self.ragged_keys:
            return list(values)
        if all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in values):
            floats = any(isinstance(v, (float, np.floating)) for v in values)
            return np.asarray(values, dtype=np.float32 if floats else np.int64)
        if all(isinstance(v, np.ndarray) for v in values):
            shapes = {v.shape for v in values}
            if len(shapes) > 1:
                raise ValueError(
                    f"batch field {name!r} has different shapes per sample {sorted(shapes)}; resize it to one "
                    f"shape in the transforms, or add {name!r} to loader.ragged_keys to keep it as a list"
                )
            return np.stack(values)
        return list(values)

    def __call__(self, samples: list) -> Any:
        first = samples[0]
        if isinstance(first, dict):
            return {k: self._collate_field(k, [s[k] for s in samples]) for k in first}
        if isinstance(first, (list, tuple)):
            names = self.field_names if len(self.field_names) == len(first) else [str(i) for i in range(len(first))]
            return [self._collate_field(names[i], [s[i] for s in samples]) for i in range(len(first))]
        raise TypeError(f"a sample must be a list (KeepKeys) or a dict, got {type(first).__name__}")


def to_tensors(batch: Any) -> Any:
    """numpy arrays in a (nested) batch to ``paddle.Tensor``; strings and numbers stay as they are."""
    if isinstance(batch, np.ndarray):
        return paddle.to_tensor(batch)
    if isinstance(batch, dict):
        return {k: to_tensors(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_tensors(v) for v in batch)
    return batch


class OcrDataLoader(paddle.io.DataLoader):
    """A ``paddle.io.DataLoader`` with ``set_epoch`` and the dataset's ``stats``.

    With ``num_workers: 0`` it loads in the calling thread: paddle's single-process iterator runs the dataset in
    a helper thread and hangs for good when a sample raises, while here the error reaches the caller.
    """

    def __iter__(self):
        if self.num_workers > 0:
            return super().__iter__()
        return self._iter_in_process()

    def _iter_in_process(self):
        for indices in self.batch_sampler:
            yield to_tensors(self.collate_fn([self.dataset[i] for i in indices]))

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Make the next iteration yield epoch ``epoch``, starting at its batch ``start_step``."""
        self.dataset.set_epoch(epoch)
        self.batch_sampler.set_epoch(epoch, start_step)

    @property
    def epoch(self) -> int:
        return self.batch_sampler.epoch

    @property
    def stats(self) -> dict:
        return self.dataset.stats


def build_dataloader(
    config: dict,
    mode: str,
    global_config: dict | None,
    seed: int,
    epoch: int = 0,
    start_step: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
) -> OcrDataLoader:
    """Build the loader of ``config[mode]`` (``mode`` ``"Train"`` or ``"Eval"``) as PaddleOCR's config reads.

    ``config[mode]`` has ``dataset`` (``name`` from the DATASETS registry plus its keys), optional
    ``sampler`` (``name: MultiScaleSampler`` plus its keys) and ``loader`` (``batch_size_per_card``,
    ``shuffle``, ``drop_last``, ``num_workers``, optional ``use_shared_memory`` and ``ragged_keys``).
    ``global_config`` defaults to ``config["Global"]``. Train shards across data-parallel ranks (defaults from
    ``paddle.distributed``); Eval reads everything on every rank unless ``rank``/``world_size`` are given.

    Batches come out as lists in ``KeepKeys`` order: stacked fields as ``paddle.Tensor`` ``(N, ...)``, ragged
    fields (``RAGGED_KEYS``) as lists of N per-sample tensors.
    """
    if mode not in ("Train", "Eval"):
        raise ValueError(f"mode must be 'Train' or 'Eval', got {mode!r}")
    if mode not in config:
        raise KeyError(f"the config has no {mode!r} section; add {mode}: {{dataset: ..., loader: ...}}")
    section = copy.deepcopy(config[mode])
    if global_config is None:
        global_config = config.get("Global", {})
    for key in ("dataset", "loader"):
        if key not in section:
            raise KeyError(f"{mode}.{key} is missing from the config")
    loader_cfg = section["loader"]
    if mode == "Eval" and world_size is None:
        rank, world_size = 0, 1

    dataset = DATASETS.build(section["dataset"], global_config=global_config, mode=mode, seed=seed)

    sampler_cfg = section.get("sampler")
    if sampler_cfg:
        sampler_cfg = dict(sampler_cfg)
        name = sampler_cfg.pop("name", None)
        if name not in SAMPLERS:
            raise KeyError(f"unknown {mode}.sampler.name {name!r}; known: {sorted(SAMPLERS)}")
        sampler_cfg.setdefault("seed", seed)
        sampler_cfg.setdefault("drop_last", bool(loader_cfg.get("drop_last", False)))
        if name == "ShuffleBatchSampler":
            sampler_cfg.setdefault("batch_size", int(loader_cfg["batch_size_per_card"]))
            sampler_cfg.setdefault("shuffle", bool(loader_cfg.get("shuffle", False)))
        batch_sampler = SAMPLERS[name](dataset, rank=rank, world_size=world_size, **sampler_cfg)
    else:
        batch_sampler = ShuffleBatchSampler(
            dataset,
            batch_size=int(loader_cfg["batch_size_per_card"]),
            shuffle=bool(loader_cfg.get("shuffle", False)),
            drop_last=bool(loader_cfg.get("drop_last", False)),
            seed=seed,
            rank=rank,
            world_size=world_size,
        )

    collate = BatchCollator(dataset.keep_keys, loader_cfg.get("ragged_keys", RAGGED_KEYS))
    loader = OcrDataLoader(
        dataset=dataset,
        batch_sampler=batch_sampler,
        collate_fn=collate,
        num_workers=int(loader_cfg.get("num_workers", 0)),
        use_shared_memory=bool(loader_cfg.get("use_shared_memory", True)),
        worker_init_fn=WorkerSeeder(seed, dataset, 0x5EED),
        return_list=True,
        persistent_workers=False,
    )
    loader.set_epoch(epoch, start_step)
    return loader
