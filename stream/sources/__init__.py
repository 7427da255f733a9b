"""Frame sources for stream-acquire: ``synthetic`` (the simulated signer, real time), ``replay``
(a recording at 1x or Nx) and ``trigno`` (a Delsys base station or the emulator).

Every source is an iterator of ``stream.wire.frames.Frame`` paced by the source itself (a synthetic or
replay source sleeps to keep real time; a Trigno source blocks on its sockets), plus ``close()``.
Sources that know ground truth (synthetic, replay of an annotated session) also expose
``annotations``: completed (label, start, end) in sEMG sample time, for the demo's side-by-side view.
"""
