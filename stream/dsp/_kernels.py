"""Private numba kernels. They take contiguous arrays and preallocated outputs and never validate:
the public functions in sosfilt.py, resample.py and preprocess.py check everything first.

Arithmetic is float64 whatever the input dtype (state, accumulators); each output sample is computed
by the same operations in the same order however the signal is cut into chunks, so streaming output
is bitwise equal to one-shot output (fastmath is off in stream.jit, so nothing is reassociated).
"""

from __future__ import annotations

import numpy as np

from stream.jit import njit

# Slots of the int64 ``counters`` array carried by the chain state.
STARTED = 0  # 0 until the first sample has initialised filter state and the ring
NEXT_OUTPUT = 1  # model-rate index of the next output to compute
LAST_INVALID = 2  # input index of the latest non-finite sample (very negative: none yet)
NEXT_INPUT = 3  # input index expected next
COUNTER_SLOTS = 4
NO_INVALID = -(2**62)


@njit
def _sos_sample(sos, zi, channel, value):
    """One sample of one channel through the cascade, transposed direct form II as scipy's
    _sosfilt (same operations, same order)."""
    for section in range(sos.shape[0]):
        new = sos[section, 0] * value + zi[section, 0, channel]
        zi[section, 0, channel] = sos[section, 1] * value - sos[section, 4] * new + zi[section, 1, channel]
        zi[section, 1, channel] = sos[section, 2] * value - sos[section, 5] * new
        value = new
    return value


@njit
def _sosfilt_kernel(sos, x, zi, y):
    """y[n, c] = cascade(x[:, c]) with state zi (sections, 2, channels) updated in place."""
    for sample in range(x.shape[0]):
        for channel in range(x.shape[1]):
            y[sample, channel] = _sos_sample(sos, zi, channel, np.float64(x[sample, channel]))


@njit
def _ring_output(ring, fir, position, up, half_len, channel):
    """One resampler output centred at upsampled ``position`` (= k * down): the sum over input
    indices i with up*i within half_len of position of fir[position + half_len - up*i] * x[i]."""
    low = -((half_len - position) // up)  # ceil((position - half_len) / up)
    high = (position + half_len) // up
    size = ring.shape[0]
    total = 0.0
    for index in range(low, high + 1):
        total += fir[position + half_len - up * index] * ring[index % size, channel]
    return total


@njit
def _chain_kernel(x, first_index, sos, zi_unit, zi, hold, ring, counters, fir, up, down, half_len, settle,
                  rectify, steady, scale, out, out_valid):
    """Non-finite hold -> SOS cascade -> optional full-wave rectification -> polyphase resampling
    -> scaling, for one chunk of one modality. Returns how many outputs were written to ``out``;
    the first of them has index counters[NEXT_OUTPUT] as it was on entry (after start-up)."""
    samples, channels = x.shape
    size = ring.shape[0]
    current = np.empty(channels)
    written = 0
    for sample in range(samples):
        index = first_index + sample
        bad = False
        for channel in range(channels):
            value = np.float64(x[sample, channel])
            if np.isfinite(value):
                hold[channel] = value
            else:
                bad = True
            current[channel] = hold[channel]
        if bad:
            counters[LAST_INVALID] = index
        starting = counters[STARTED] == 0
        if starting:
            counters[NEXT_OUTPUT] = -((-index * up) // down)  # first output at or after this sample
            for section in range(zi.shape[0]):
                for channel in range(channels):
                    zi[section, 0, channel] = zi_unit[section, 0] * current[channel] if steady else 0.0
                    zi[section, 1, channel] = zi_unit[section, 1] * current[channel] if steady else 0.0
        for channel in range(channels):
            value = _sos_sample(sos, zi, channel, current[channel])
            if rectify:
                value = abs(value)
            if starting:
                # The past before the first sample: a hold of the first output, or zeros.
                fill = value if steady else 0.0
                for slot in range(size):
                    ring[slot, channel] = fill
            ring[index % size, channel] = value
        counters[STARTED] = 1
        output = counters[NEXT_OUTPUT]
        while (output * down + half_len) // up <= index:
            position = output * down
            for channel in range(channels):
                out[written, channel] = _ring_output(ring, fir, position, up, half_len, channel) * scale
            low = -((half_len - position) // up)
            out_valid[written] = counters[LAST_INVALID] < low - settle
            written += 1
            output += 1
        counters[NEXT_OUTPUT] = output
    counters[NEXT_INPUT] = first_index + samples
    return written
