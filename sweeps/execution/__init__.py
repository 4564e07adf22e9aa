"""Variants become trained results: `plan` (packs: one Ray task each), `training` (one pack as a
core population), `execute` (packs on Ray or serially), `submit` (a whole sweep as a Ray job),
`retrain` (one variant again from its logged params), `machine` (what the numbers ran on)."""
