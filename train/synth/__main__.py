"""python -m train.synth --out DIR [--signers N --repetitions N --seed S --sessions N --workers N]"""

from __future__ import annotations

import argparse
import json
import sys

from stream.synth.signer import GENERATOR_VERSION
from train.synth.build import generate_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.synth",
        description="Generate the synthetic ISL dataset (isolated recordings + continuous sessions, index, splits).")
    parser.add_argument("--out", required=True, help="new (or empty) dataset directory")
    parser.add_argument("--signers", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=20, help="repetitions of each sign per signer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sessions", type=int, default=3, help="continuous sessions per signer (60-120 s each)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: min(2, CPUs))")
    parser.add_argument("--variability", type=float, default=1.0,
                        help="scale of the per-repetition variation (1 = the documented model)")
    parser.add_argument("--generator-version", type=int, default=GENERATOR_VERSION,
                        help=f"the signer model (default {GENERATOR_VERSION}; 4 rebuilds synth-v6 exactly; docs/DATA.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    arguments = parser.parse_args(argv)
    try:
        summary = generate_dataset(arguments.out, arguments.signers, arguments.repetitions, arguments.seed,
                                   arguments.sessions, arguments.workers, arguments.variability,
                                   progress=not arguments.quiet, version=arguments.generator_version)
    except (FileExistsError, ValueError, OSError) as error:
        print(f"train.synth: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"train.synth: stopped; {arguments.out} has no index.json yet (an unfinished data set): "
              "run the same command again to rebuild it", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
