"""The base of every YAML mapping's schema (pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A YAML mapping: unknown fields are errors, no type is converted, values are frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
