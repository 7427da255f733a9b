"""Model architectures (``models.architectures``, needs the ``train`` extra) and the shipped students
with their cards: ``models/student/`` (the six-sensor Trigno layout, trained on the synthetic signer)
and ``models/lis-myo/`` (the Myo armband, trained on the real lis-myo recordings, with
``replay.toml``)."""

from pathlib import Path

STUDENT_DIR = Path(__file__).resolve().parent / "student"
LIS_MYO_DIR = Path(__file__).resolve().parent / "lis-myo"
