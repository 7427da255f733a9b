"""Readers for public recordings (lis-myo, PLUX OpenSignals) and offline reference tools on them.

The data stay outside the repository (see /work/shared/data/README.md for their terms); these modules
only read them.
"""
