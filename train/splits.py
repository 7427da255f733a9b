"""Deterministic train/validation/test splits, saved with a dataset (``splits.json``).

- ``within`` (known signers, new repetitions): for every (signer, sign) the repetitions are shuffled
  with the split seed and 15% go to test, 15% to validation, the rest to training (14/3/3 of 20).
  Every sign and every signer is in every part: stratified by sign.
- ``loso`` (leave one signer out): one fold per signer; its isolated recordings are the test set, the
  other signers' ``within`` validation repetitions the validation set, everything else of theirs the
  training set. Model selection never sees the held-out signer.

Only isolated recordings are split; continuous sessions are for streaming evaluation and are listed
per signer (``sessions``), so a LOSO fold can evaluate streaming on its held-out signer only.
"""

from __future__ import annotations

import zlib
from collections import defaultdict

import numpy as np

from stream.recording.dataset import PARTS

SPLITS_VERSION = 1


def _fraction_counts(count: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    test = max(1, int(round(count * test_fraction)))
    validation = max(1, int(round(count * validation_fraction)))
    if test + validation >= count:
        raise ValueError(f"{count} repetitions cannot be split into train/val/test with fractions "
                         f"{1 - validation_fraction - test_fraction:.2f}/{validation_fraction}/{test_fraction}; "
                         "generate at least 3 repetitions per sign and signer")
    return validation, test


def make_splits(entries: list[dict], seed: int = 0, validation_fraction: float = 0.15,
                test_fraction: float = 0.15) -> dict:
    """Splits from index entries (dicts with id, kind, label, signer, repetition)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    sessions: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        if entry["kind"] == "isolated":
            groups[(entry["signer"], entry["label"])].append(entry)
        elif entry["kind"] == "session":
            sessions[entry["signer"]].append(entry["id"])
    if not groups:
        raise ValueError("no isolated recordings to split")
    within: dict[str, list[str]] = {part: [] for part in PARTS}
    part_of: dict[str, str] = {}
    for (signer, label), members in sorted(groups.items()):
        members = sorted(members, key=lambda entry: (entry["repetition"], entry["id"]))
        # A per-group stream: adding a signer or sign never reshuffles the others.
        group_seed = zlib.crc32(f"{signer}\0{label}".encode())
        order = np.random.default_rng([seed, group_seed]).permutation(len(members))
        validation, test = _fraction_counts(len(members), validation_fraction, test_fraction)
        for rank, position in enumerate(order):
            part = "test" if rank < test else "val" if rank < test + validation else "train"
            within[part].append(members[position]["id"])
            part_of[members[position]["id"]] = part
    for part in PARTS:
        within[part].sort()
    signers = sorted({signer for signer, _ in groups})
    loso = []
    if len(signers) >= 2:
        for held_out in signers:
            fold = {"held_out_signer": held_out, "train": [], "val": [], "test": []}
            for (signer, _), members in sorted(groups.items()):
                for entry in members:
                    if signer == held_out:
                        fold["test"].append(entry["id"])
                    else:
                        fold["val" if part_of[entry["id"]] == "val" else "train"].append(entry["id"])
            for part in PARTS:
                fold[part].sort()
            loso.append(fold)
    return {
        "version": SPLITS_VERSION, "seed": seed,
        "fractions": {"train": 1 - validation_fraction - test_fraction, "val": validation_fraction, "test": test_fraction},
        "within": within, "loso": loso,
        "sessions": {signer: sorted(ids) for signer, ids in sorted(sessions.items())},
    }

