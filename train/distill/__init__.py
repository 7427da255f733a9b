"""Multi-teacher knowledge distillation: ``python -m train.distill --data DIR --out DIR``.

Trains one teacher per modality, distils their ensemble into a small three-branch student, runs the
ablation (student from scratch, single-teacher KD, mean and CA-MKD-weighted multi-teacher KD),
exports TFLite variants and writes a model card and a report. See docs/TRAINING.md.
"""
