"""``python -m train.datasets xdf``: a real XDF file (written here chunk by chunk as the XDF
specification lays it out: pyxdf only reads) with two data streams and a marker stream, imported
into our recording format; lost samples are gaps, markers annotations, mismatches refused."""

from __future__ import annotations

import json
from fractions import Fraction
import struct

import numpy as np
import pytest

pytest.importorskip("pyxdf", reason="pyxdf not installed (pip install -e '.[train]')")

from stream.config import config_from_dict  # noqa: E402
from stream.recording import read_recording  # noqa: E402
from train.datasets.__main__ import main  # noqa: E402

EMG_RATE, IMU_RATE = 10000 / 9, 4000 / 27


class XdfWriter:
    """The XDF format (github.com/sccn/xdf/wiki/Specifications): "XDF:", then chunks of
    [number of length bytes][length][tag uint16][content]; streams are numbered by a uint32."""

    def __init__(self) -> None:
        self.data = bytearray(b"XDF:")
        self._chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')

    @staticmethod
    def _varlen(value: int) -> bytes:
        return struct.pack("<BI", 4, value)

    def _chunk(self, tag: int, content: bytes) -> None:
        body = struct.pack("<H", tag) + content
        self.data += self._varlen(len(body)) + body

    def stream_header(self, stream_id: int, name: str, kind: str, channels: int, rate: float, fmt: str,
                      desc: str = "") -> None:
        xml = (f'<?xml version="1.0"?><info><name>{name}</name><type>{kind}</type><channel_count>{channels}'
               f"</channel_count><nominal_srate>{rate!r}</nominal_srate><channel_format>{fmt}</channel_format>"
               f"<source_id>{name}-id</source_id><created_at>0</created_at><desc>{desc}</desc></info>")
        self._chunk(2, struct.pack("<I", stream_id) + xml.encode())

    def samples(self, stream_id: int, stamps, values) -> None:
        content = bytearray(struct.pack("<I", stream_id) + self._varlen(len(stamps)))
        for stamp, sample in zip(stamps, values):
            content += b"\x08" + struct.pack("<d", stamp)
            if isinstance(sample[0], str):
                for text in sample:
                    encoded = text.encode()
                    content += self._varlen(len(encoded)) + encoded
            else:
                content += np.asarray(sample, "<f4").tobytes()
        self._chunk(3, bytes(content))

    def clock_offset(self, stream_id: int, collected: float, offset: float) -> None:
        self._chunk(4, struct.pack("<Idd", stream_id, collected, offset))

    def footer(self, stream_id: int, first: float, last: float, count: int) -> None:
        xml = (f'<?xml version="1.0"?><info><first_timestamp>{first!r}</first_timestamp><last_timestamp>{last!r}'
               f"</last_timestamp><sample_count>{count}</sample_count></info>")
        self._chunk(6, struct.pack("<I", stream_id) + xml.encode())


def write_session(path, emg, acc, emg_start: float, acc_start: float, markers, emg_lost=(), acc_rate=IMU_RATE,
                  acc_channels=None, late=slice(0, 0)):
    """sEMG (stream 1) and accelerometer (stream 2) with per-sample timestamps, and a marker stream 3."""
    writer = XdfWriter()
    writer.stream_header(1, "signstream-emg", "EMG", emg.shape[1], EMG_RATE, "float32",
                         "<signstream><exact_rate>10000/9</exact_rate></signstream>")
    writer.stream_header(2, "signstream-acc", "Accelerometer", acc_channels or acc.shape[1], acc_rate, "float32")
    writer.stream_header(3, "signstream-markers", "Markers", 1, 0.0, "string")
    emg_keep = np.setdiff1d(np.arange(len(emg)), np.asarray(list(emg_lost), int))
    emg_stamps = emg_start + emg_keep / EMG_RATE
    emg_stamps[late] += 0.020  # a chunk the sender stamped 20 ms late (when it pushed it)
    acc_stamps = acc_start + np.arange(len(acc)) / acc_rate
    for stream_id in (1, 2, 3):
        writer.clock_offset(stream_id, emg_start, 0.0)
    for chunk in np.array_split(np.arange(len(emg_keep)), 7):  # interleaved chunks, as LabRecorder writes
        writer.samples(1, emg_stamps[chunk], emg[emg_keep[chunk]])
        part = slice(int(chunk[0] * len(acc) / len(emg_keep)), int((chunk[-1] + 1) * len(acc) / len(emg_keep)))
        writer.samples(2, acc_stamps[part], acc[part])
    writer.samples(3, [stamp for stamp, _ in markers], [[text] for _, text in markers])
    for stream_id in (1, 2, 3):
        writer.clock_offset(stream_id, emg_start + 1.0, 0.0)
    writer.footer(1, float(emg_stamps[0]), float(emg_stamps[-1]), len(emg_stamps))
    writer.footer(2, float(acc_stamps[0]), float(acc_stamps[-1]), len(acc_stamps))
    path.write_bytes(bytes(writer.data))


def emg_acc_config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[sensors]\nprofile = "trigno-emg-acc"\n')
    return path


def signals(seconds: float):
    generator = np.random.default_rng(3)
    emg = generator.normal(0, 0.01, (round(seconds * EMG_RATE), 6)).astype(np.float32)
    acc = generator.normal(0, 0.1, (round(seconds * IMU_RATE), 18)).astype(np.float32)
    return emg, acc


def test_an_xdf_session_becomes_a_recording_with_gaps_and_annotations(tmp_path):
    emg, acc = signals(4.0)
    t0 = 5000.0
    marker = {"label": "hello", "confidence": 0.9, "start": t0 + 1.0 + 0.05 + 0.5, "end": t0 + 0.05 + 1.0 + 1.2}
    lost = range(1200, 1260)  # 54 ms of sEMG lost (more than a frame): a gap
    write_session(tmp_path / "session.xdf", emg, acc, emg_start=t0, acc_start=t0 + 0.05,
                  markers=[(marker["end"], json.dumps(marker)), (t0 + 2.0, "block 2 begins")], emg_lost=lost)
    out = tmp_path / "out"
    assert main(["xdf", str(tmp_path / "session.xdf"), "--out", str(out), "--config", str(emg_acc_config(tmp_path))]) == 0
    recording = read_recording(out / "session.h5")
    # Sample 0 is the latest first timestamp (the accelerometer's, 50 ms in): 55.5 sEMG samples skipped.
    skip = round(0.05 * EMG_RATE)
    assert recording.layout.modalities == ("emg", "acc") and recording.emg_rate_hz == Fraction(10000, 9)
    frames = recording.whole_frames
    assert recording.emg.shape == (15 * frames, 6) and recording.acc.shape == (2 * frames, 18)
    gap_rows = np.arange(lost.start, lost.stop) - skip
    assert np.isnan(recording.emg[gap_rows]).all()
    kept = np.setdiff1d(np.arange(len(recording.emg)), gap_rows)
    assert np.array_equal(recording.emg[kept], emg[kept + skip])
    assert np.array_equal(recording.acc, acc[: 2 * frames])
    emg_gaps = [(gap.emg_start, gap.emg_end) for gap in recording.gaps]
    assert emg_gaps == [(lost.start - skip, lost.stop - skip)]
    (annotation,) = recording.annotations
    assert annotation.label == "hello"
    assert (annotation.start_index, annotation.end_index) == (round(1.5 * EMG_RATE), round(2.2 * EMG_RATE))
    assert recording.metadata["markers"] == [{"stream": "signstream-markers", "time_s": pytest.approx(1.95),
                                              "text": "block 2 begins"}]
    assert recording.metadata["lost_samples"] == {"emg": 60, "acc": 0}
    assert recording.metadata["streams"]["emg"]["source_id"] == "signstream-emg-id"


def test_a_stream_at_another_rate_or_with_other_channels_is_refused_naming_both(tmp_path, capsys):
    emg, acc = signals(1.0)
    write_session(tmp_path / "rate.xdf", emg, acc, 100.0, 100.0, [], acc_rate=148.0)
    write_session(tmp_path / "channels.xdf", emg, acc[:, :9], 100.0, 100.0, [])
    config = str(emg_acc_config(tmp_path))
    assert main(["xdf", str(tmp_path / "rate.xdf"), "--out", str(tmp_path / "a"), "--config", config]) == 2
    assert "nominal rate 148.0 Hz is not the layout's acc rate 4000/27 Hz" in capsys.readouterr().err
    assert main(["xdf", str(tmp_path / "channels.xdf"), "--out", str(tmp_path / "b"), "--config", config]) == 2
    assert "9 channels; the layout (trigno-emg-acc: " in capsys.readouterr().err


def test_a_missing_stream_is_refused_listing_what_the_file_holds(tmp_path, capsys):
    emg, acc = signals(1.0)
    write_session(tmp_path / "session.xdf", emg, acc, 100.0, 100.0, [])
    # The default layout also needs a gyroscope stream, which this file does not have.
    assert main(["xdf", str(tmp_path / "session.xdf"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "no stream matches [acquire.lsl] gyro_name = 'signstream-gyro'" in error
    assert "'signstream-acc' (type 'Accelerometer', 18 channels)" in error


def test_to_recording_uses_the_configs_stream_choice(tmp_path):
    from train.datasets.xdf import to_recording

    emg, acc = signals(1.0)
    write_session(tmp_path / "session.xdf", emg, acc, 100.0, 100.0, [])
    config = config_from_dict({"sensors": {"profile": "trigno-emg"},
                               "acquire": {"lsl": {"emg_name": "", "emg_type": "EMG"}}})
    recording = to_recording(tmp_path / "session.xdf", config)
    assert recording.layout.modalities == ("emg",) and np.array_equal(recording.emg, emg[: recording.emg.shape[0]])


def test_a_chunk_stamped_late_is_counted_as_it_came(tmp_path):
    """The importer counts samples as stream-acquire does live: 15 sEMG samples stamped 20 ms late
    (longer than a frame) are neither a gap nor a clock jump."""
    from train.datasets.xdf import to_recording

    emg, acc = signals(1.0)
    write_session(tmp_path / "session.xdf", emg, acc, 100.0, 100.0, [], late=slice(300, 315))
    config = config_from_dict({"sensors": {"profile": "trigno-emg-acc"}})
    recording = to_recording(tmp_path / "session.xdf", config)
    assert recording.gaps == [] and recording.metadata["notes"] == []
    assert np.array_equal(recording.emg, emg[: recording.emg.shape[0]])
