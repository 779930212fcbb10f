-- Second database for the MLflow tracking server (the app uses `healthpredict`).
CREATE DATABASE mlflow OWNER healthpredict;
