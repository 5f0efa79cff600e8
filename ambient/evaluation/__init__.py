"""Evaluation as a product feature: the same scoring a hospital runs on its own data before go-live."""
