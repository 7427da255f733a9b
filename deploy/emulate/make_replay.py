"""Write the recordings arm64-check.sh uses: one synthetic signer session (train.synth, seeded),
cut to --seconds, to replay; or, with --guided K, a guided calibration session (every sign of the
vocabulary K times, stream-record's prompts) of a person the shipped model never saw, for
stream-calibrate --from. Runs on the host (the training side); prints the ground truth (the
annotations) as JSON lines (label, start_s, end_s) for summarise.py.

    python deploy/emulate/make_replay.py --seconds 60 --out /work/arm64-root/var/lib/signstream/replay.h5
    python deploy/emulate/make_replay.py --guided 2 --seed 1 --out /work/arm64-root/var/lib/signstream/calibration.h5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

from stream.daemons.record import guided_plan
from stream.recording import write_recording
from stream.synth.session import guided_recording, session_recording
from stream.synth.signer import make_signer
from stream.synth.vocabulary import LABELS
from stream.wire.rates import EMG_RATE_HZ

# stream-calibrate's defaults (2 s of rest, 2 s per prompt), so the session is the one a user records.
GUIDED_REST_S = GUIDED_SIGN_S = 2.0


def cut(recording, seconds: float):
    """The first ``seconds`` of a recording, with the annotations and gaps wholly inside it."""
    emg_end = math.floor(seconds * recording.emg_rate_hz)
    imu_end = math.floor(seconds * recording.imu_rate_hz)
    return dataclasses.replace(
        recording,
        emg=recording.emg[:emg_end], acc=recording.acc[:imu_end], gyro=recording.gyro[:imu_end],
        annotations=[a for a in recording.annotations if a.end_index <= recording.emg_first_index + emg_end],
        gaps=[g for g in recording.gaps if g.emg_end <= recording.emg_first_index + emg_end],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=2026, help="the population seed of the signer")
    parser.add_argument("--signer", type=int, default=0)
    parser.add_argument("--guided", type=int, default=0, metavar="K",
                        help="a guided calibration session of K rounds through all signs instead (not cut)")
    parser.add_argument("--out", required=True)
    arguments = parser.parse_args()
    signer = make_signer(arguments.seed, arguments.signer)
    if arguments.guided > 0:
        prompts = guided_plan(list(LABELS), arguments.guided, GUIDED_REST_S, GUIDED_SIGN_S, EMG_RATE_HZ, seed=0)
        recording = guided_recording(arguments.seed, signer, prompts)
    else:
        recording = session_recording(arguments.seed, signer, 0)
        if recording.duration_s > arguments.seconds:
            recording = cut(recording, arguments.seconds)
    recording.validate("replay recording")
    write_recording(arguments.out, recording)
    rate = recording.emg_rate_hz
    for annotation in recording.annotations:
        print(json.dumps({"label": annotation.label, "start_s": float(annotation.start_index / rate),
                          "end_s": float(annotation.end_index / rate)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
