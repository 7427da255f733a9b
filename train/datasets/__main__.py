"""``python -m train.datasets NAME SOURCE --out DIR``: public recordings -> a dataset of ours.

- ``lis-myo SOURCE``: the lis-myo repository's ``Dataset/`` folder (``<letter>/<guid>.json``) or its
  ``.tar.xz``; writes a dataset in the ``myo`` layout with stratified 70/10/20 splits (``--seed``).
- ``plux SOURCE``: a folder of OpenSignals ``.h5`` files; writes one recording each in the ``plux``
  layout (saturated samples flagged as missing).
- ``xdf FILE ...``: LabRecorder's XDF files (Lab Streaming Layer sessions; pyxdf); one recording each
  in the layout of ``--config``'s ``[sensors]``, the streams chosen by its ``[acquire.lsl]``, marker
  streams as annotations (docs/LSL.md).

Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.datasets", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["lis-myo", "plux", "xdf"])
    parser.add_argument("source", nargs="+", help="the source folder or file (xdf: one or more .xdf files)")
    parser.add_argument("--out", required=True, help="an empty or new directory")
    parser.add_argument("--seed", type=int, default=0, help="split seed (lis-myo)")
    parser.add_argument("--config", default=None, help="xdf: the config whose [sensors] and [acquire.lsl] apply "
                        "(default: stream/default.toml)")
    arguments = parser.parse_args(argv)
    if arguments.name != "xdf" and len(arguments.source) != 1:
        parser.error(f"{arguments.name} takes one SOURCE, got {len(arguments.source)}")
    from stream.recording import RecordingError
    from stream.recording.dataset import DatasetError

    try:
        if arguments.name == "xdf":
            from stream.config import ConfigError, load_config
            from train.datasets.xdf import XdfFileError, write_xdf_recordings

            try:
                for path in write_xdf_recordings(arguments.source, arguments.out, load_config(arguments.config)):
                    print(path)
            except (XdfFileError, ConfigError) as error:
                raise DatasetError(str(error)) from None
        elif arguments.name == "lis-myo":
            from train.datasets.lis_myo import LisMyoError, write_dataset

            try:
                print(write_dataset(arguments.source[0], arguments.out, seed=arguments.seed))
            except LisMyoError as error:
                raise DatasetError(str(error)) from None
        else:
            from train.datasets.plux import PluxFileError, write_plux_recordings

            try:
                for path in write_plux_recordings(arguments.source[0], arguments.out):
                    print(path)
            except PluxFileError as error:
                raise DatasetError(str(error)) from None
    except (DatasetError, RecordingError, OSError) as error:
        print(f"train.datasets {arguments.name}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
