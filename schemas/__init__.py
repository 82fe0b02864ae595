"""Contracts of crm-triggers as pydantic v2 models; JSON Schemas in `schemas/json/`."""
