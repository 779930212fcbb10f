"""Data layer: the synthetic ED cohort generator, CSV loading through task configs, cleaning."""
