"""Dashboard view: data."""

from __future__ import annotations

import fastapi

router = fastapi.APIRouter()
