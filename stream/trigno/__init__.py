"""Delsys Trigno: the SDK TCP protocol (``protocol``), slot mapping and units (``convert``), the
client (``client``), and a protocol-faithful loopback emulator (``emulated_base``, ``emulator``).
The pipeline's source is ``stream.sources.trigno.TrignoSource``. See docs/TRIGNO.md."""
