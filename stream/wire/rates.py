"""Exact sample rates and sample-time arithmetic.

Every Trigno rate is an integer multiple of 1000/27 Hz, so one 13.5 ms frame holds a whole number
of samples of each stream. Rates are kept as ``fractions.Fraction`` and sample positions as Python
integers: the time of sample ``n`` is ``n / rate`` exactly, after a day of streaming as after a
second (a float64 rate would drift by whole samples over a long session).
"""

from __future__ import annotations

from fractions import Fraction

FRAME_PERIOD_S = Fraction(27, 2000)  # 13.5 ms
EMG_RATE_HZ = Fraction(10000, 9)  # 900 us period
IMU_RATE_HZ = Fraction(4000, 27)  # 6.75 ms period
EMG_SAMPLES_PER_FRAME = 15
IMU_SAMPLES_PER_FRAME = 2


def parse_rate(value: object) -> Fraction:
    """Read a rate given as an int, a float that is exactly representable, or a "p/q" string.

    >>> parse_rate("10000/9")
    Fraction(10000, 9)
    """
    if isinstance(value, bool):
        raise ValueError(f"rate {value!r} is a boolean; give a number or a 'p/q' string such as '10000/9'")
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, int):
        rate = Fraction(value)
    elif isinstance(value, float):
        # Only accept floats that are whole numbers: 1111.11 is not 10000/9.
        if not value.is_integer():
            raise ValueError(
                f"rate {value!r} is not exact; write it as a fraction string, e.g. '10000/9' for 1111.1 Hz"
            )
        rate = Fraction(int(value))
    elif isinstance(value, str):
        # Fraction("1e100000000") builds a 10**100000000 integer (minutes of CPU): a DoS through
        # one small frame header. Rates never need exponents or more than a few dozen characters.
        if len(value) > 64 or "e" in value.lower():
            raise ValueError(f"rate {value[:80]!r} is not a number or a 'p/q' fraction such as '10000/9'")
        try:
            rate = Fraction(value.strip())
        except (ValueError, ZeroDivisionError) as error:
            raise ValueError(f"rate {value!r} is not a number or a 'p/q' fraction such as '10000/9'") from error
    else:
        raise ValueError(f"rate {value!r} has type {type(value).__name__}; give a number or a 'p/q' string")
    if rate <= 0:
        raise ValueError(f"rate {value!r} must be positive")
    return rate


def samples_per_frame(rate_hz: Fraction) -> int:
    """Samples of a stream at ``rate_hz`` in one 13.5 ms frame; raises if not a whole number."""
    count = rate_hz * FRAME_PERIOD_S
    if count.denominator != 1:
        raise ValueError(
            f"rate {rate_hz} Hz gives {float(count):.4f} samples per 13.5 ms frame; Trigno rates are whole "
            "multiples of 1000/27 Hz (e.g. '10000/9', '4000/27')"
        )
    return int(count)


def sample_time_s(index: int, rate_hz: Fraction) -> Fraction:
    """Exact time in seconds of sample ``index`` of a stream starting at time 0."""
    return Fraction(index) / rate_hz


def sample_index_at(time_s: Fraction, rate_hz: Fraction) -> int:
    """Index of the first sample at or after ``time_s`` (exact)."""
    position = Fraction(time_s) * rate_hz
    return -((-position.numerator) // position.denominator)


def rate_to_string(rate_hz: Fraction) -> str:
    """Canonical text form, as used in config files and on the wire: '10000/9' or '148'."""
    return str(rate_hz)
