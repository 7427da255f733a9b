"""The training windows' per-channel statistics that input alignment needs (``input_statistics`` in a
model card), for a card written without them.

    python -m train.adapt.statistics --model CARD --data DIR [--protocol within|loso] [--held-out-signer S]

The windows are the model's training windows (``train.distill.data``, un-jittered, the data set's saved
split); the card is rewritten atomically with ``input_statistics`` added, its files untouched.
``train.distill`` writes the same statistics itself from Dec 2026 on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path



def input_statistics(windows: dict) -> dict:
    """modality -> {"mean": [...], "std": [...]} per channel over (n, samples, channels) windows: the
    same statistics the on-device alignment computes for a user (stream.adapt.alignment)."""
    from stream.adapt.alignment import channel_statistics

    statistics = {}
    for name, array in windows.items():
        mean, std = channel_statistics(array)
        statistics[name] = {"mean": mean.tolist(), "std": std.tolist()}
    return statistics


def training_windows(dataset, config, protocol: str, held_out_signer: str | None) -> dict:
    from train.distill.data import build_window_set, plan_from_config

    split = dataset.splits[protocol]
    if protocol == "loso":
        folds = {fold["held_out_signer"]: fold for fold in split}
        if held_out_signer not in folds:
            raise ValueError(f"--held-out-signer: one of {', '.join(sorted(folds))}")
        split = folds[held_out_signer]
    train_ids = set(split["train"])
    entries = [entry for entry in dataset.entries if entry.id in train_ids]
    return build_window_set(dataset, entries, config, plan_from_config(config), progress_every=0).windows()


def main(argv: list[str] | None = None) -> int:
    from stream.common.atomic import atomic_write_json
    from stream.config import Config
    from stream.recording.dataset import DatasetError, open_dataset

    parser = argparse.ArgumentParser(prog="python -m train.adapt.statistics", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--protocol", choices=("within", "loso"), default="within")
    parser.add_argument("--held-out-signer", default=None)
    arguments = parser.parse_args(argv)
    try:
        card = json.loads(arguments.model.read_text())
        statistics = input_statistics(training_windows(open_dataset(arguments.data), Config(), arguments.protocol,
                                                       arguments.held_out_signer))
    except (OSError, ValueError, KeyError, DatasetError) as error:
        print(f"train.adapt.statistics: {error}", file=sys.stderr)
        return 2
    card["input_statistics"] = statistics
    atomic_write_json(arguments.model, card)
    print(json.dumps({name: {"channels": len(value["mean"])} for name, value in statistics.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
