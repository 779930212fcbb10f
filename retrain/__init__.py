"""Retraining from clinicians' feedback: one job (`job.run_retrain`), promotion rules, executors."""
