"""signstream: real-time Indian Sign Language recognition from wearable sEMG + IMU sensors.

This package holds what runs on the Raspberry Pi: the DSP, the ZeroMQ daemons and their stages.
Importing it must never import TensorFlow.
"""

__version__ = "0.1.0"
