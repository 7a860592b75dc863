"""Data: loading (GroupLens files or a team's own log), the synthetic generator, the splits."""
