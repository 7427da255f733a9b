"""Socket-free stages: segmenter, recogniser, classifier, sign events and model cards. Daemons,
evaluation and training call the same objects, so what is measured offline is what runs live.
No module here imports zmq."""
