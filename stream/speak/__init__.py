"""stream-speak's parts around the socket-free ``stream.stages.speech`` stage: the synthesiser
(``espeak``: espeak-ng as a subprocess), where the audio goes (``output``: the audio device through a
player, or WAV files) and the one thread that does the slow work (``worker``)."""
