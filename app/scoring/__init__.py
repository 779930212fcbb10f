"""Bulk scoring of a file of patients (`python -m app.scoring`, `make score`): pandas or Spark.

Same registry loader (`ModelManager`), same validation (`PatientRecord`) and same predictor
(`Predictor.predict_many`) as `POST /predict/batch`; only the transport differs.
"""
