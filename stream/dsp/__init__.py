"""Streaming signal processing: filters, resampling, the preprocessing chain and windows.

Public entry points: ``stream.dsp.preprocess.Preprocessor`` (+ ``AlignedBlock``,
``preprocessing_spec``, ``preprocessing_hash``), ``stream.dsp.windows.WindowAssembler`` (+ ``Window``),
``stream.dsp.sosfilt.SosFilter`` and ``stream.dsp.resample.Resampler``. See docs/DSP.md.
"""
