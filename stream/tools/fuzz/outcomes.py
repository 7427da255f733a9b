"""What a fuzz check returns for one input: the decoder refused it with its own documented error, or
accepted it and its output met the invariants its callers rely on (anything else is raised)."""

REFUSED, ACCEPTED = "refused", "accepted"
