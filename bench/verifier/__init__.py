"""Certified lower bounds on robust accuracy: IBP, CROWN and an exact MILP decision, in float64."""
