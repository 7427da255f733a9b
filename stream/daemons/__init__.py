"""The daemons that run on the Pi: stream-acquire, stream-infer, stream-sink, stream-subscribe and
stream-record, each a thin ZeroMQ wrapper (``skeleton``) around socket-free stages."""
