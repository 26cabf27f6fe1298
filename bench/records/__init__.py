"""Run records on disk: their schema and migrations, validation rules, the typed reader, the
writer, the resume state, adversarial-example files and the ε-curves read from records (core layer)."""
