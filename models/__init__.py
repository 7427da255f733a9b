"""Model architectures (``models.architectures``, needs the ``train`` extra) and the shipped student
(``models/student/``: .tflite files and ``model_card.json``)."""

from pathlib import Path

STUDENT_DIR = Path(__file__).resolve().parent / "student"
