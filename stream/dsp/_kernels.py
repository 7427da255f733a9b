"""Private numba kernels. They take contiguous arrays and preallocated outputs and never validate:
the public functions in sosfilt.py, resample.py and preprocess.py check everything first.

Arithmetic is float64 whatever the input dtype (state, accumulators); each output sample is computed
by the same operations in the same order however the signal is cut into chunks, so streaming output
is bitwise equal to one-shot output (fastmath is off in stream.common.jit, so nothing is reassociated).

Speed comes from the loop order, not from reordering arithmetic: channels are the innermost loop
(contiguous state, independent per channel), so LLVM vectorises across channels and the CPU
overlaps the channels' dependency chains, where scipy runs one channel's serial recursion at a time.
"""

from __future__ import annotations

import numpy as np

from stream.common.jit import njit

# Slots of the int64 ``counters`` array carried by the chain state.
STARTED = 0  # 0 until the first sample has initialised filter state and the ring
NEXT_OUTPUT = 1  # model-rate index of the next output to compute
LAST_INVALID = 2  # input index of the latest non-finite sample (very negative: none yet)
NEXT_INPUT = 3  # input index expected next
COUNTER_SLOTS = 4
NO_INVALID = -(2**62)
# Inputs beyond this magnitude are treated like NaN: no sensor sends them (Trigno ranges: sEMG
# +-11 mV, acc +-16 g, gyro +-2000 deg/s), and a corrupted 1e38 would overflow the filter state to
# inf and poison it for good.
ABSURD_INPUT = 1e6

# Columns of the int64 ``params`` array: one row per chain (modality).
SECTIONS, FIR_LENGTH, UP, DOWN, HALF_LEN, SETTLE, RECTIFY, STEADY, CHANNELS, RING = range(10)
PARAM_SLOTS = 10


@njit
def _sos_step(sos, sections, zi, values, channels):
    """One sample of every channel through the first ``sections`` rows of ``sos``, in place in
    ``values``; transposed direct form II with exactly scipy's _sosfilt operations per channel.
    ``zi`` is (sections, 2, channels) like scipy's for axis 0."""
    for section in range(sections):
        b0, b1, b2 = sos[section, 0], sos[section, 1], sos[section, 2]
        a1, a2 = sos[section, 4], sos[section, 5]
        state0 = zi[section, 0]
        state1 = zi[section, 1]
        for channel in range(channels):
            value = values[channel]
            new = b0 * value + state0[channel]
            state0[channel] = b1 * value - a1 * new + state1[channel]
            state1[channel] = b2 * value - a2 * new
            values[channel] = new


@njit
def _sosfilt_kernel(sos, x, zi, y):
    """y = cascade(x) along axis 0 with state zi (sections, 2, channels) updated in place."""
    channels = x.shape[1]
    values = np.empty(channels)
    for sample in range(x.shape[0]):
        for channel in range(channels):
            values[channel] = x[sample, channel]
        _sos_step(sos, sos.shape[0], zi, values, channels)
        for channel in range(channels):
            y[sample, channel] = values[channel]


@njit
def _chain_kernel(x, first_index, chain, sos, zi_unit, fir, params, scales, zi, hold, ring, counters, out, out_valid):
    """Non-finite hold -> SOS cascade -> optional full-wave rectification -> polyphase resampling
    -> scaling, for one chunk of chain ``chain`` of a bank (arrays stacked over chains, padded to
    the widest). Returns how many outputs were written to ``out``; the first has the index
    counters[chain, NEXT_OUTPUT] had on entry (after start-up). Returns -1 and changes nothing if
    the chunk does not continue the chain: ``out`` is sized for contiguous input only, so this one
    check stays in the kernel to keep it memory-safe whatever the caller does.

    The ring (2 * size, channels) keeps each past filtered input twice (rows slot and slot + size)
    so that any FIR span of up to ``size`` inputs is contiguous: no modulo per tap.
    """
    if counters[chain, STARTED] != 0 and first_index != counters[chain, NEXT_INPUT]:
        return -1
    samples = x.shape[0]
    sections = params[chain, SECTIONS]
    up = params[chain, UP]
    down = params[chain, DOWN]
    half_len = params[chain, HALF_LEN]
    settle = params[chain, SETTLE]
    rectify = params[chain, RECTIFY] != 0
    steady = params[chain, STEADY] != 0
    channels = params[chain, CHANNELS]
    size = params[chain, RING]
    scale = scales[chain]
    chain_sos = sos[chain]
    chain_zi = zi[chain]
    chain_hold = hold[chain]
    chain_ring = ring[chain]
    chain_fir = fir[chain]
    values = np.empty(channels)
    totals = np.empty(channels)
    written = 0
    for sample in range(samples):
        index = first_index + sample
        bad = False
        for channel in range(channels):
            value = np.float64(x[sample, channel])
            if abs(value) <= ABSURD_INPUT:  # False for NaN too
                chain_hold[channel] = value
            else:
                bad = True
            values[channel] = chain_hold[channel]
        if bad:
            counters[chain, LAST_INVALID] = index
        starting = counters[chain, STARTED] == 0
        if starting:
            counters[chain, NEXT_OUTPUT] = -((-index * up) // down)  # first output at or after this sample
            for section in range(sections):
                for slot in range(2):
                    for channel in range(channels):
                        chain_zi[section, slot, channel] = zi_unit[chain, section, slot] * values[channel] if steady \
                            else 0.0
        _sos_step(chain_sos, sections, chain_zi, values, channels)
        if rectify:
            for channel in range(channels):
                values[channel] = abs(values[channel])
        if starting:
            # The past before the first sample: a hold of the first output, or zeros.
            for row in range(2 * size):
                for channel in range(channels):
                    chain_ring[row, channel] = values[channel] if steady else 0.0
        slot = index % size
        for channel in range(channels):
            chain_ring[slot, channel] = values[channel]
            chain_ring[slot + size, channel] = values[channel]
        counters[chain, STARTED] = 1
        output = counters[chain, NEXT_OUTPUT]
        while (output * down + half_len) // up <= index:
            position = output * down
            low = -((half_len - position) // up)  # first input in the span: ceil((position - half_len) / up)
            span = (position + half_len) // up - low + 1
            base = low % size
            first_tap = position + half_len - up * low
            for channel in range(channels):
                totals[channel] = 0.0
            for offset in range(span):
                tap = chain_fir[first_tap - up * offset]
                row = base + offset
                for channel in range(channels):
                    totals[channel] += tap * chain_ring[row, channel]
            for channel in range(channels):
                out[written, channel] = totals[channel] * scale
            out_valid[written] = counters[chain, LAST_INVALID] < low - settle
            written += 1
            output += 1
        counters[chain, NEXT_OUTPUT] = output
    counters[chain, NEXT_INPUT] = first_index + samples
    return written


@njit
def _frame_kernel(emg, acc, gyro, emg_first_index, imu_first_index, sos, zi_unit, fir, params, scales, zi, hold, ring,
                  counters, out, out_valid, written):
    """One frame of all three chains (sEMG, acc, gyro) in one call: the per-call overhead of a
    jitted function is paid once per frame, not once per modality. All or nothing: if any chunk
    does not continue its chain, nothing runs and every ``written`` is -1."""
    for chain, first_index in ((0, emg_first_index), (1, imu_first_index), (2, imu_first_index)):
        if counters[chain, STARTED] != 0 and first_index != counters[chain, NEXT_INPUT]:
            written[:] = -1
            return
    written[0] = _chain_kernel(emg, emg_first_index, 0, sos, zi_unit, fir, params, scales, zi, hold, ring, counters,
                               out[0], out_valid[0])
    written[1] = _chain_kernel(acc, imu_first_index, 1, sos, zi_unit, fir, params, scales, zi, hold, ring, counters,
                               out[1], out_valid[1])
    written[2] = _chain_kernel(gyro, imu_first_index, 2, sos, zi_unit, fir, params, scales, zi, hold, ring, counters,
                               out[2], out_valid[2])
