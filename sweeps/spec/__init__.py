"""A sweep file becomes variants: `config` (the schema and its setting roles), `problems`
(what is wrong, on which line), `search` (grid and random variants), `data` (data sets),
`sweep` (`load_sweep`: the whole file, validated, with its data and variants)."""
