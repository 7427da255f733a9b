"""Synthetic data sets from the simulated signer (``stream.synth``).

``python -m train.synth --out DIR`` writes a dataset directory (see docs/DATA.md). Modules: generate
(isolated recordings, units of parallel work), build (the dataset directory), calibrate (fast
proxies of how hard a data set is), bench.
"""
