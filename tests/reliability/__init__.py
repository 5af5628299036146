"""Load, faults and shutdown, through the real doors."""
