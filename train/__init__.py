"""Offline work: the synthetic signer, the data set format tools, splits, and distillation.

Modules that need TensorFlow import it inside themselves, so ``train.synth`` and the data tools
stay usable on a runtime-only install (stream-acquire's synthetic source uses the signer).
"""
