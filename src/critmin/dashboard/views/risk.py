"""Dashboard view: risk."""

from __future__ import annotations

import fastapi

router = fastapi.APIRouter()
