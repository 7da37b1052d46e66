"""One ensemble: the stockpile and finance draws are the Monte Carlo's own draws.

``optimize.workflow.run_ensemble_unmet`` rebuilds the per-draw unmet demand of ``critmin risk`` (same network,
hazards, cited responses, seed and chunking), so its first draws are the risk ensemble's first draws and their
mean is the risk ensemble's expected shortfall, to the bit.
"""

from __future__ import annotations

import numpy as np

from critmin.optimize.workflow import ENSEMBLE_CHUNK, run_ensemble_unmet
from critmin.reference.catalog import Catalog
from critmin.supplychain.risk import assess_risk


def test_stockpile_draws_are_the_risk_ensembles_draws():
    cat = Catalog()
    _net, unmet = run_ensemble_unmet(cat, draws=ENSEMBLE_CHUNK, months=12, seed=11)
    ds, _frame, _meta = assess_risk("USA,JPN", draws=ENSEMBLE_CHUNK, seed=11, catalog=cat)
    for consumer in ("USA", "JPN"):
        mine = unmet.sel(consumer=consumer).mean("draw")
        theirs = ds["expected_shortfall"].sel(consumer=consumer).reindex_like(mine)
        np.testing.assert_array_equal(mine.values, theirs.values)
    first = run_ensemble_unmet(cat, draws=500, months=12, seed=11)[1]
    np.testing.assert_array_equal(first.values, unmet.isel(draw=slice(0, 500)).values)
