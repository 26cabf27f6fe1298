"""The masking audit: its checks over records, the binarization test, the runner and the audit
file it writes (application layer, above evaluation)."""
