"""Dashboard view: mineral."""

from __future__ import annotations

import fastapi

router = fastapi.APIRouter()
