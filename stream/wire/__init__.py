"""The wire format: exact rates, frames, and the msgpack messages every daemon and subscriber
speaks (docs/protocol.md). Knows nothing of DSP, sockets or models."""
