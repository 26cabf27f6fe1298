"""What is derived from records and audits: the leaderboard (Markdown and HTML), results.csv,
plots and the one-run summary table (application layer, above auditing)."""
