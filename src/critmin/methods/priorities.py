"""Priority minerals: combine the methods into a ranked list with reasons.

Rule (declared in params.yml, ``priorities``): a commodity is a priority for an importer when one
supplier outside the allied group controls at least the threshold share of a stage (mining from USGS,
refining from the cited processing-shares table), or when the importer relies on imports for at least
that share and one non-allied partner supplies at least that share of them. Ranking: mean percentile
rank of GeoPolRisk score, EU SR, USGS-style SR and the largest non-allied stage share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from critmin.reference.countries import country_name


def percentile_rank(values: pd.Series) -> pd.Series:
    """Percentile rank in (0, 1]; NaN stays NaN."""
    return values.rank(pct=True, method="average")


def combine(table: pd.DataFrame, *, eu_threshold: float, share_threshold: float, allies: set[str]) -> pd.DataFrame:
    """Add ``composite``, ``priority``, ``rank`` and ``reason`` columns to the per-commodity table.

    ``table`` has one row per (importer, commodity) with columns geopolrisk_score, eu_sr, usgs_sr,
    top_mine_supplier/share, top_refine_supplier/share/year/basis, top_import_partner/share, year.
    """
    out = []
    for _imp, grp in table.groupby("importer", sort=False):
        g = grp.copy()
        mine_na = g["top_mine_share"].where(~g["top_mine_supplier"].isin(allies))
        ref_na = g["top_refine_share"].where(~g["top_refine_supplier"].isin(allies))
        g["non_allied_stage_share"] = pd.concat([mine_na, ref_na], axis=1).max(axis=1, skipna=True)
        ranks = pd.concat([percentile_rank(g[c]) for c in
                           ("geopolrisk_score", "eu_sr", "usgs_sr", "non_allied_stage_share")], axis=1)
        g["composite"] = ranks.mean(axis=1, skipna=True)
        mine_flag = mine_na >= share_threshold
        ref_flag = ref_na >= share_threshold
        import_flag = ((g["import_reliance"] >= share_threshold) & (g["top_import_share"] >= share_threshold)
                       & ~g["top_import_partner"].isin(allies))
        g["priority"] = mine_flag.fillna(False) | ref_flag.fillna(False) | import_flag.fillna(False)
        g = g.sort_values(["priority", "composite", "commodity"], ascending=[False, False, True],
                          na_position="last")
        g["rank"] = np.arange(1, len(g) + 1)
        g["reason"] = [_reason(r, eu_threshold, share_threshold, allies) for r in g.itertuples(index=False)]
        out.append(g)
    return pd.concat(out, ignore_index=True) if out else table


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _reason(r, eu_threshold: float, share_threshold: float, allies: set[str]) -> str:
    parts = []
    if pd.notna(r.top_mine_share):
        parts.append(f"mining: {country_name(r.top_mine_supplier)} {_pct(r.top_mine_share)} of {r.year} output")
    if pd.notna(r.top_refine_share):
        parts.append(f"refining: {country_name(r.top_refine_supplier)} {_pct(r.top_refine_share)} "
                     f"({int(r.top_refine_year)}, {r.top_refine_basis})")
    if pd.notna(r.top_import_share):
        parts.append(f"imports: {country_name(r.top_import_partner)} {_pct(r.top_import_share)} of "
                     f"{r.importer}'s imports by value ({int(r.import_year)})")
    if pd.notna(r.eu_sr):
        parts.append(f"EU SR {r.eu_sr:.2f}")
    return "; ".join(parts)
