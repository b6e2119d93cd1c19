"""Loading and batching a MOSI-sized synthetic file on CPU, in one run: the DataLoader over
``MMSADataset`` with ``collate`` (what training uses) against the same loop over plain pre-stacked
tensors sliced per batch (the floor). Samples per second, their ratio, JSON.
Run: python benchmarks/bench_data_loading.py   (generates build/synthetic_mosi.pkl once, ~420 MiB)
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from alignlib.common import threads
from alignlib.data import MODALITIES, MMSADataset, collate, load_mmsa, synthetic
from common import write_result

BATCH = 32
PATH = Path(__file__).resolve().parent.parent / "build" / "synthetic_mosi.pkl"


def throughput(batches) -> float:
    start, count = time.perf_counter(), 0
    for labels in batches:
        count += len(labels)
    return count / (time.perf_counter() - start)


def main() -> None:
    threads.configure()
    if not PATH.exists():
        synthetic.write(PATH, *synthetic.generate("mosi", seed=0))
    start = time.perf_counter()
    data = load_mmsa(PATH)
    load_seconds = time.perf_counter() - start
    split = data.splits["train"]

    loader = torch.utils.data.DataLoader(MMSADataset(split), batch_size=BATCH, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(0))
    stacked = {m: torch.from_numpy(split.features[m]) for m in MODALITIES}
    masks = {m: torch.from_numpy(split.masks[m]) for m in MODALITIES}
    labels = torch.from_numpy(split.labels)

    def plain():
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        for first in range(0, len(order), BATCH):
            index = order[first:first + BATCH]
            _ = {m: stacked[m][index] for m in MODALITIES}, {m: masks[m][index] for m in MODALITIES}
            yield labels[index]

    throughput(b.labels for b in loader)  # warm-up
    ours = max(throughput(b.labels for b in loader) for _ in range(3))
    floor = max(throughput(plain()) for _ in range(3))
    print(f"{PATH.name}: {len(split)} training clips, load + validate {load_seconds:.2f} s")
    print(f"DataLoader + collate: {ours:,.0f} samples/s   pre-stacked tensors: {floor:,.0f} samples/s   "
          f"ratio {ours / floor:.2f}")
    write_result("data_loading", {"file": PATH.name, "clips": len(split), "batch": BATCH, "load_seconds": load_seconds,
                                  "collate_samples_per_s": ours, "stacked_samples_per_s": floor, "ratio": ours / floor})


if __name__ == "__main__":
    main()
