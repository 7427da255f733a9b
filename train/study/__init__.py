"""Studies: a grid of existing commands (train.distill, train.adapt.evaluate, ...) run as independent
tasks, resumed by key, on local processes or a Ray cluster; then the results table.

``spec`` reads a study file and expands it into runs, ``keys`` says what makes a run the same run,
``task`` runs one of them (subprocess, log, completion marker), ``executors`` spreads them (local
threads or Ray tasks), ``table`` builds the results from the run directories, ``__main__`` is
``python -m train.study``. docs/TRAINING.md, "Studies".
"""
