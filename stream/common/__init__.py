"""Small helpers every wing shares: one numba wrapper (``jit``) and atomic file writes (``atomic``)."""
