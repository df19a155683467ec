"""Cohorts: batches of cases run locally or as Slurm job arrays (`batch`, `slurm`, `slurm_queue`),
and calibration against outcomes and mechanical tests (`roc`, `cohort_calibration`, `material_fit`)."""
