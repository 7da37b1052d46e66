"""The analyst dashboard (``critmin dashboard``): a local web app over the public Python API.

Server-rendered pages (FastAPI + Jinja2) with Plotly figures drawn by the plotly.min.js of the installed
``plotly`` package; every asset is served by the app itself, so it works offline. Each view keeps its state in
its query string (a shareable URL), offers the tables it shows as CSV/XLSX (the same URL with
``format=csv|xlsx``) and lists its sources. Numbers come from :mod:`critmin.api` and the dataset tables only.
"""

from __future__ import annotations


def create_dashboard(data=None, db=None, **options):
    """The dashboard app (see :func:`critmin.dashboard.app.create_dashboard`)."""
    from critmin.dashboard.app import create_dashboard as create

    return create(data, db, **options)


__all__ = ["create_dashboard"]
