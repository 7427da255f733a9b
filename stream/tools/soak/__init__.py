"""Soak run: the real daemons for N minutes on a replayed session at a high speed-up, with figures.

``python -m stream.tools.soak --minutes 30 --speed 10`` generates a continuous session of the synthetic
signer (or replays ``--recording``), starts stream-sink, stream-infer, stream-record and
stream-acquire (replay, looping, ``--speed`` x real time) as separate processes on fresh loopback
ports, and for N minutes samples each daemon's RSS, open file descriptors and CPU time from /proc,
and collects every status, ground-truth and event message. At the end it stops them (acquire
first, so everything in flight drains) and checks:

- frames in/out: published by acquire, received and missed by infer, predictions and events through
  the sink, events at a subscriber, every drop counter;
- the recorder lost nothing: its file holds every frame published from the one it joined at, equal
  sample for sample to the replayed recording, except frames it filled as reported gaps;
- no growth: the least-squares slope of RSS (MB/hour) and open descriptors (per hour) of each
  daemon after a warm-up;
- events against ground truth: events inside an annotated sign (right label or not) and in rest.

It prints one JSON object on stdout and a human summary on stderr; exit status 1 when a check fails.
Linux only (/proc). The generated session comes from the simulated signer (stream.synth).
"""

from stream.tools.soak.runner import main

__all__ = ["main"]
