"""`make bench`: HealthPredict vs `mlflow models serve`, a BentoML service, a bare endpoint."""
