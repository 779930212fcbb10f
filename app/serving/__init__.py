"""Serving core: model loading and hot swap, fast prediction, quality tiers, clinical rules.

No FastAPI here: the HTTP layer (`app/api`) calls these modules.
"""
