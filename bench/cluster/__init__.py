"""Sweeps as jobs: one job per checkpoint, on this machine (submitit's local executor) or on a SLURM
cluster, each running the in-process sweep's own unit of work (plan under the checkpoint's lock,
then evaluate), with a ledger in the results folder that says where every job stands."""
