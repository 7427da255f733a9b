"""Lab Streaming Layer (LSL) on our side of the wire, without sockets of ours (docs/LSL.md).

``library`` loads pylsl lazily (the optional extra ``signstream[lsl]``), ``streams`` names our LSL
streams and checks foreign ones against the layout, ``clock`` maps our sample clock to LSL's,
``counting`` places received samples on our sample clock (the live source and the XDF importer), and
``bridge`` is the stage behind stream-lsl: decoded frames and events in, LSL samples out.
``stream.daemons.lsl`` subscribes and hands it the messages; ``stream.sources.lsl`` reads LSL
streams for stream-acquire.
"""
