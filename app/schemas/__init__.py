"""Pydantic request/response bodies; patient fields are generated from the contract."""
