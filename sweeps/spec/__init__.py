"""A sweep file becomes variants: `config` (the schema and its setting roles), `problems`
(what is wrong, on which line), `parameters` (search.parameters), `search` (the table of search
methods, from `sweeps.methods`; keys and names), `data` (data sets),
`sweep` (`load_sweep`: the whole file, validated, with its data and variants)."""
