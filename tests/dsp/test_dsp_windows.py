"""Aligned windows: the hop grid, chunk invariance, gaps dropped or flagged, the ring buffer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from stream.config import Config, config_from_dict
from stream.dsp.preprocess import AlignedBlock
from stream.dsp.windows import WindowAssembler, extract_window, window_hop_samples, window_length_samples


def make_block(first_index: int, rows: int, invalid=()):
    """Model-rate data whose values say their own index, so any misalignment shows."""
    index = np.arange(first_index, first_index + rows, dtype=np.float32)[:, None]
    valid = np.ones(rows, dtype=bool)
    for position in invalid:
        valid[position - first_index] = False
    return AlignedBlock(first_index, np.repeat(index, 6, 1), np.repeat(index + 0.25, 18, 1),
                        np.repeat(index + 0.5, 18, 1), valid)


def split(block, cuts):
    edges = [0, *sorted(set(cuts)), len(block)]
    for lo, hi in zip(edges, edges[1:]):
        if hi > lo:
            yield AlignedBlock(block.first_index + lo, block.emg[lo:hi], block.acc[lo:hi], block.gyro[lo:hi],
                               block.valid[lo:hi])


def test_lengths_in_model_samples():
    assert window_length_samples(Config()) == 148
    assert window_hop_samples(Config()) == 1
    assert window_hop_samples(config_from_dict({"window": {"hop_s": 0.135}})) == 10
    with pytest.raises(ValueError, match="less than one model-rate sample"):
        WindowAssembler(config_from_dict({"window": {"hop_s": 0.001}}))


def test_every_window_covers_the_same_span_in_every_modality():
    assembler = WindowAssembler(Config())
    windows = assembler.push(make_block(1000, 300))
    assert [window.end_index for window in windows] == list(range(1148, 1301))
    for window in windows:
        expected = np.arange(window.start_index, window.end_index, dtype=np.float32)
        np.testing.assert_array_equal(window.emg[:, 3], expected)
        np.testing.assert_array_equal(window.acc[:, 17], expected + 0.25)
        np.testing.assert_array_equal(window.gyro[:, 0], expected + 0.5)
        assert window.emg.dtype == np.float32 and window.emg.shape == (148, 6) and not window.flagged


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 2599), max_size=12), hop=st.sampled_from([0.0135, 0.0405, 0.27]),
       first=st.integers(0, 10**9))
def test_windows_do_not_depend_on_how_the_blocks_were_cut(cuts, hop, first):
    # Pieces shorter than the buffer slack take the buffer path, longer ones the view path.
    config = config_from_dict({"window": {"hop_s": hop, "gap_policy": "flag"}})
    block = make_block(first, 2600, invalid=[first + 200])
    whole = WindowAssembler(config).push(block)
    assembler = WindowAssembler(config)
    pieces = [window for piece in split(block, cuts) for window in assembler.push(piece)]
    assert [w.end_index for w in pieces] == [w.end_index for w in whole]
    assert all(w.end_index % window_hop_samples(config) == 0 for w in whole)
    for a, b in zip(pieces, whole):
        np.testing.assert_array_equal(a.acc, b.acc)
        assert a.flagged == b.flagged == (a.start_index <= first + 200 < a.end_index)


@pytest.mark.parametrize("policy", ["drop", "flag"])
def test_a_gap_between_blocks_is_never_closed_up(policy):
    config = config_from_dict({"window": {"gap_policy": policy}})
    assembler = WindowAssembler(config)
    first = assembler.push(make_block(0, 200))
    after = assembler.push(make_block(210, 100))  # model samples 200..209 never arrived
    assert [w.end_index for w in first] == list(range(148, 201))
    # Ends 201..310 all reach back over 200..209; none after it is complete yet (that needs 358).
    if policy == "drop":
        assert after == [] and assembler.dropped == 110
        assert assembler.window_ending_at(250) is None
    else:
        assert [w.end_index for w in after] == list(range(201, 311)) and all(w.flagged for w in after)
        window = next(w for w in after if w.end_index == 250)  # samples 102..249
        np.testing.assert_array_equal(window.emg[:98, 0], np.arange(102, 200, dtype=np.float32))
        np.testing.assert_array_equal(window.emg[98:108, 0], 0.0)  # the missing samples are zeros
        np.testing.assert_array_equal(window.emg[108:, 0], np.arange(210, 250, dtype=np.float32))
        assert assembler.window_ending_at(250).flagged


def test_a_gap_longer_than_the_ring_restarts_the_windows():
    assembler = WindowAssembler(Config(), history_s=0.5)
    assembler.push(make_block(0, 200))
    windows = assembler.push(make_block(10_000, 150))
    assert [w.end_index for w in windows] == [10_148, 10_149, 10_150]


def test_invalid_samples_drop_or_flag_the_windows_over_them():
    block = make_block(0, 300, invalid=[160])
    dropped = WindowAssembler(Config()).push(block)
    assert [w.end_index for w in dropped] == list(range(148, 161))  # later ones all contain 160
    flagged = WindowAssembler(config_from_dict({"window": {"gap_policy": "flag"}})).push(block)
    assert len(flagged) == 153
    assert [w.end_index for w in flagged if w.flagged] == list(range(161, 301))


def test_window_ending_at_reads_the_ring():
    assembler = WindowAssembler(Config(), history_s=1.0)  # 148 + 74 samples held
    for piece in split(make_block(0, 600), range(7, 600, 7)):
        assembler.push(piece)
    window = assembler.window_ending_at(590)
    np.testing.assert_array_equal(window.gyro[:, 5], np.arange(442, 590, dtype=np.float32) + 0.5)
    assert assembler.window_ending_at(600) is not None
    assert assembler.window_ending_at(601) is None  # not yet received
    assert assembler.window_ending_at(600 - 222 + 148 - 1) is None  # no longer held
    assert assembler.window_ending_at(600 - 222 + 148) is not None
    with pytest.raises(ValueError, match="integer"):
        assembler.window_ending_at(590.0)


def test_extract_window_from_a_whole_recording_block():
    block = make_block(20, 400, invalid=[300])
    window = extract_window(block, 200, 148)
    np.testing.assert_array_equal(window.emg[:, 0], np.arange(52, 200, dtype=np.float32))
    assert not window.flagged and extract_window(block, 310, 148).flagged
    assert extract_window(block, 167, 148) is None and extract_window(block, 421, 148) is None


def test_bad_blocks_are_refused():
    assembler = WindowAssembler(Config())
    assembler.push(make_block(100, 10))
    with pytest.raises(ValueError, match="went backwards"):
        assembler.push(make_block(105, 10))
    bad = make_block(110, 10)
    bad.acc = bad.acc[:, :9]
    with pytest.raises(ValueError, match="expected \\(10, 18\\)"):
        assembler.push(bad)


def test_windows_of_long_blocks_are_read_only_views_and_later_pushes_touch_no_window():
    assembler = WindowAssembler(Config())
    streamed = assembler.push(make_block(0, 160))  # short block: copies from the buffer
    whole = assembler.push(make_block(160, 3000))  # a whole recording: views of one array
    kept = [streamed[-1].emg.copy(), whole[0].acc.copy(), whole[-1].gyro.copy()]
    for index in range(3160, 3160 + 3000, 7):  # enough short pushes to compact the buffer
        assembler.push(make_block(index, 7))
    np.testing.assert_array_equal(streamed[-1].emg, kept[0])
    np.testing.assert_array_equal(whole[0].acc, kept[1])
    np.testing.assert_array_equal(whole[-1].gyro, kept[2])
    assert not whole[0].emg.flags.writeable
    with pytest.raises(ValueError):
        whole[0].acc[0, 0] = 1.0
    window = assembler.window_ending_at(6160 - 5)
    np.testing.assert_array_equal(window.emg[:, 0], np.arange(6160 - 5 - 148, 6160 - 5, dtype=np.float32))


@settings(max_examples=25, deadline=None)
@example(cuts=[553, 925], skipped={1}, policy="flag")  # a compaction mid-push once lost row 406
@given(cuts=st.lists(st.integers(1, 2599), min_size=2, max_size=12), skipped=st.sets(st.integers(1, 12), max_size=3),
       policy=st.sampled_from(["drop", "flag"]))
def test_missing_blocks_equal_zeros_marked_invalid(cuts, skipped, policy):
    # Leaving pieces out (a gap in the block indices) gives exactly the windows of the whole block
    # with those samples zero and invalid: a gap is never closed up.
    config = config_from_dict({"window": {"gap_policy": policy}})
    block = make_block(0, 2600)
    pieces = list(split(block, cuts))
    skipped = {index for index in skipped if index < len(pieces) - 1}
    # (A gap as long as the buffer restarts the windows instead: tested above.)
    capacity, run = WindowAssembler(config).capacity, 0
    for index, piece in enumerate(pieces):
        run = run + len(piece) if index in skipped else 0
        assume(run < capacity)
    holes = make_block(0, 2600)
    for index in skipped:
        piece = pieces[index]
        rows = slice(piece.first_index, piece.first_index + len(piece))
        for array in (holes.emg, holes.acc, holes.gyro):
            array[rows] = 0.0
        holes.valid[rows] = False
    expected = WindowAssembler(config).push(holes)
    assembler = WindowAssembler(config)
    got = [window for index, piece in enumerate(pieces) if index not in skipped for window in assembler.push(piece)]
    # Windows ending inside a skipped piece come out (flagged, or dropped) with the next block.
    assert [w.end_index for w in got] == [w.end_index for w in expected]
    for a, b in zip(got, expected):
        assert a.flagged == b.flagged
        np.testing.assert_array_equal(a.emg, b.emg)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 2599), max_size=12), policy=st.sampled_from(["drop", "flag"]))
def test_holding_without_cutting_answers_window_ending_at_as_pushing_does(cuts, policy):
    """stream-infer holds the blocks (no hop windows cut) and asks for the window at each sign's end."""
    config = config_from_dict({"window": {"gap_policy": policy}})
    pushed, held = WindowAssembler(config), WindowAssembler(config)
    for piece in split(make_block(500, 2600, invalid=[900]), cuts):
        pushed.push(piece)
        assert held.hold(piece) is None
        for end in range(piece.end_index - 300, piece.end_index + 2, 7):
            expected, found = pushed.window_ending_at(end), held.window_ending_at(end)
            assert (expected is None) == (found is None), end
            if expected is not None:
                assert expected.flagged == found.flagged and expected.end_index == found.end_index
                for name in ("emg", "acc", "gyro"):
                    np.testing.assert_array_equal(getattr(expected, name), getattr(found, name))
