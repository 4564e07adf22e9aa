"""Records become what people read: `results` (pandas tables: one row per variant, seeds
aggregated), `plots`, `progress` (the bar while training), `outputs` (tables, plots and
artifacts at the end of a sweep)."""
