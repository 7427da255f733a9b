"""XDF files (LabRecorder's recordings of Lab Streaming Layer sessions) into our recording format.

``python -m train.datasets xdf FILE ... --out DIR [--config CONFIG]``: one recording per file, in the
layout of the config's ``[sensors]``, each modality taken from the stream that ``[acquire.lsl]`` names
(``<modality>_name`` / ``<modality>_type``, the same choice stream-acquire makes live), checked as live
(channel count, nominal rate equal to the layout's exact rate within float precision; anything else
is refused naming both). pyxdf reads the file with its clock offsets applied (timestamps as
recorded, not dejittered).

**Samples on our sample clock, counted as live.** Sample 0 of every modality is at the latest first
timestamp of the streams used, and from there ``stream.lsl.counting.SampleCounter`` places the
samples exactly as stream-acquire's LSL source does: each sample is the next index, and the
timestamps only check the counting (lost samples become NaN with a ``Gap``, never closed; a clock
that jumped back is a note; a chunk stamped late is neither). Both clocks are cut to the whole
frames they share.

**Markers.** Every string stream (type ``Markers`` or string samples) is read: a marker that is
stream-lsl's JSON (``label``, ``start``, ``end`` on the LSL clock; docs/LSL.md) becomes an
annotation over its span; any other marker string, a point in time, is kept in ``metadata["markers"]``
with its time in seconds from sample 0 (an annotation needs a span). Annotations outside the
recording are left out and counted in ``metadata["notes"]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class XdfFileError(ValueError):
    """An XDF file this importer cannot convert; the message names the file and the problem."""


def _field(info: dict, key: str, default: str = "") -> str:
    value = info.get(key, [default])
    return str(value[0]) if isinstance(value, list) and value else (str(value) if value is not None else default)


def _exact_rate(info: dict) -> str:
    try:
        return str(info["desc"][0]["signstream"][0]["exact_rate"][0])
    except (KeyError, IndexError, TypeError):
        return ""


def _describe(stream: dict) -> str:
    info = stream["info"]
    return f"{_field(info, 'name')!r} (type {_field(info, 'type')!r}, {_field(info, 'channel_count')} channels)"


def _is_strings(stream: dict) -> bool:
    return _field(stream["info"], "channel_format") == "string"


def _choose(streams: list[dict], modality: str, selection, where: str) -> dict:
    name, kind = getattr(selection, f"{modality}_name"), getattr(selection, f"{modality}_type")
    matches = [stream for stream in streams if not _is_strings(stream)
               and (not name or _field(stream["info"], "name") == name)
               and (not kind or _field(stream["info"], "type") == kind)]
    wanted = f"[acquire.lsl] {modality}_name = {name!r}, {modality}_type = {kind!r}"
    if not matches:
        raise XdfFileError(f"{where}: no stream matches {wanted}; the file holds "
                           f"{', '.join(_describe(stream) for stream in streams) or 'no streams'}: set the name/type "
                           "in the config given with --config")
    if len(matches) > 1:
        raise XdfFileError(f"{where}: {len(matches)} streams match {wanted} ({', '.join(map(_describe, matches))}); "
                           "give a name that picks one")
    return matches[0]


def _counted(stream: dict, t0: float, modality: str, layout):
    """The stream's samples on our sample clock from ``t0`` (stream.lsl.counting, as stream-acquire
    counts them live): (samples with NaN where lost, gaps, clock jumps)."""
    from stream.lsl.counting import SampleCounter

    stamps = np.asarray(stream["time_stamps"], np.float64)
    values = np.asarray(stream["time_series"], np.float32).reshape(len(stamps), -1)
    rate = layout.rate(modality)
    at_start = np.flatnonzero(stamps >= t0 - 0.5 / float(rate))
    skip = int(at_start[0]) if len(at_start) else len(stamps)
    counter = SampleCounter(modality, rate, layout.samples_per_frame(modality), float(layout.frame_period_s),
                            values.shape[1])
    counter.place(values[skip:], stamps[skip:])
    counter.finish()
    return counter.buffer.take(counter.buffer.available), counter.gaps, counter.clock_jumps


def to_recording(path, config):
    """One XDF file as a ``Recording`` in ``config``'s layout (see the module docstring)."""
    try:
        import pyxdf
    except ModuleNotFoundError:
        raise XdfFileError("reading XDF needs pyxdf, which is not installed: pip install -e '.[train]'") from None

    from stream.lsl.streams import LslStreamError, check_stream
    from stream.recording.model import ALL_SENSORS, Annotation, Gap, Recording

    path = Path(path)
    where = str(path)
    layout = config.layout
    frame_s = float(layout.frame_period_s)
    try:
        streams, header = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=False)
    except (OSError, ValueError, EOFError, KeyError) as error:
        raise XdfFileError(f"{where}: not an XDF file pyxdf can read ({type(error).__name__}: {error})") from None
    chosen = {}
    for stream in layout.streams:
        picked = _choose(streams, stream.modality, config.acquire.lsl, where)
        info = picked["info"]
        try:
            check_stream(f"{where}: stream {_field(info, 'name')!r}", stream.modality,
                         int(_field(info, "channel_count", "0")), float(_field(info, "nominal_srate", "0")), layout,
                         _exact_rate(info))
        except LslStreamError as error:
            raise XdfFileError(str(error)) from None
        if len(picked["time_stamps"]) == 0:
            raise XdfFileError(f"{where}: stream {_describe(picked)} holds no samples")
        chosen[stream.modality] = picked
    t0 = max(float(picked["time_stamps"][0]) for picked in chosen.values())
    counted = {modality: _counted(picked, t0, modality, layout) for modality, picked in chosen.items()}
    frames = min(len(counted[modality][0]) // layout.samples_per_frame(modality) for modality in counted)
    if frames == 0:
        raise XdfFileError(f"{where}: the streams overlap by less than one {frame_s * 1000:g} ms frame")
    arrays, gaps = {}, []
    emg_rate, imu_rate = layout.emg_rate_hz, layout.imu_rate_hz
    notes, lost_samples = [], {}
    for modality, (samples, lost, jumps) in counted.items():
        rows = frames * layout.samples_per_frame(modality)
        arrays[modality] = np.ascontiguousarray(samples[:rows])
        spans = [(gap.start_index, min(gap.end_index, rows)) for gap in lost if gap.start_index < rows]
        lost_samples[modality] = sum(end - start for start, end in spans)
        notes += [f"{modality}: the timestamps went back {jump.seconds * 1000:.1f} ms at sample {jump.index} "
                  "(the sender's clock jumped; samples counted on)" for jump in jumps if jump.index < rows]
        for start, end in spans:
            if modality == "emg":
                imu_start = int(start * imu_rate // emg_rate)
                gaps.append(Gap(ALL_SENSORS, start, end, imu_start, imu_start))
            else:
                emg_start = int(start * emg_rate // imu_rate)
                gaps.append(Gap(ALL_SENSORS, emg_start, emg_start, start, end))
    imu_rows = frames * layout.imu_samples_per_frame
    for modality in ("acc", "gyro"):
        arrays.setdefault(modality, np.zeros((imu_rows, 0), np.float32))
    annotations, markers = [], []
    emg_end = frames * layout.emg_samples_per_frame
    for stream in streams:
        if not (_is_strings(stream) or _field(stream["info"], "type") == "Markers"):
            continue
        for stamp, sample in zip(stream["time_stamps"], stream["time_series"]):
            text = str(sample[0]) if len(sample) else ""
            try:
                marker = json.loads(text)
                span = (str(marker["label"]), float(marker["start"]), float(marker["end"]))
            except (ValueError, KeyError, TypeError):
                markers.append({"stream": _field(stream["info"], "name"), "time_s": float(stamp) - t0, "text": text})
                continue
            start, end = (int(round((value - t0) * float(emg_rate))) for value in span[1:])
            if span[0] and 0 <= start < end <= emg_end:
                annotations.append(Annotation(span[0], start, end))
            else:
                notes.append(f"marker {span[0]!r} at {span[1] - t0:.3f}-{span[2] - t0:.3f} s is outside the recording "
                             f"(0-{emg_end / float(emg_rate):.3f} s) or empty: left out")
    annotations.sort(key=lambda annotation: annotation.start_index)
    gaps.sort(key=lambda gap: (gap.emg_start, gap.imu_start))
    metadata = {
        "kind": "continuous",
        "source": "XDF (train.datasets.xdf)",
        "file": path.name,
        "lsl_time_of_sample_0": t0,
        "streams": {modality: {"name": _field(picked["info"], "name"), "type": _field(picked["info"], "type"),
                               "source_id": _field(picked["info"], "source_id"),
                               "nominal_srate": float(_field(picked["info"], "nominal_srate", "0"))}
                    for modality, picked in chosen.items()},
        "markers": markers,
        "lost_samples": lost_samples,
        "notes": notes,
    }
    recording = Recording(emg=arrays["emg"], acc=arrays["acc"], gyro=arrays["gyro"], emg_rate_hz=emg_rate,
                          imu_rate_hz=imu_rate, sensor_names=tuple(layout.sensor_names), annotations=annotations,
                          metadata=metadata, gaps=gaps,
                          imu_names=tuple(layout.imu_names) if layout.imu_names != layout.sensor_names else (),
                          emg_unit=layout.emg_unit)
    recording.validate(where)
    return recording


def write_xdf_recordings(files, out_dir, config) -> list[Path]:
    """Each XDF file as ``out_dir/<stem>.h5`` in our recording format (key "recording")."""
    from stream.recording import write_recording

    out_dir = Path(out_dir)
    paths = [Path(file) for file in files]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise XdfFileError(f"no such file: {', '.join(missing)}")
    stems = [path.stem for path in paths]
    if len(set(stems)) != len(stems):
        raise XdfFileError(f"two files would both be written as {out_dir}/<name>.h5: {sorted(stems)}; import them "
                           "into separate folders")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_recording(out_dir / f"{path.stem}.h5", to_recording(path, config)) for path in paths]
