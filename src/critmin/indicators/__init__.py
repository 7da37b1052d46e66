"""Pure indicator kernels over labelled arrays (no IO, no globals)."""

from critmin.indicators.core import (
    allied_share,
    eu_wgi_scale,
    geopolrisk_g,
    governance_weighted_import_risk,
    hhi,
    import_reliance,
    import_shares,
    shares,
    top_k_share,
    wgi_weighted_hhi,
)

__all__ = ["allied_share", "eu_wgi_scale", "geopolrisk_g", "governance_weighted_import_risk",
           "hhi", "import_reliance", "import_shares", "shares", "top_k_share", "wgi_weighted_hhi"]
