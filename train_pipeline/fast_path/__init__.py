"""The serving fast path: what stays of the re-implementations, each with an equivalence test.

- `pipeline.FastPipeline`: a fitted sklearn pipeline's steps called on NumPy columns (no
  DataFrame, no per-call validation); equal to ``Pipeline.predict_proba``
  (tests/unit/test_fast_path.py).
- `forest.ObliviousForest`: CatBoost's oblivious trees in NumPy for small batches; checked
  against CatBoost when built (tests/unit/test_oblivious.py).
- `shared_features.SharedFeatures`: the treatment's raw features from the diagnosis' (one
  transform a request, not two); verified on probe records at load.
- `tree_shap.ObliviousTreeShap`: exact tree SHAP of those trees (tests/unit/test_explain.py).

A fast path that cannot be verified for a model is not used for it, and never silently: the
predictor logs it once, counts it in ``healthpredict_fast_path_disabled_total{path}`` and
`/health` lists it (``fast_paths``).
"""
