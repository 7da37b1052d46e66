"""One ensemble: the risk table, the stockpile and the finance draws come from one :class:`Ensemble`.

``build_ensemble`` makes the network, hazards and cited responses of ``critmin risk`` once; ``Ensemble.unmet``
gives the per-draw unmet demand of that ensemble's first draws (same seed and chunking), so their mean is the
risk ensemble's expected shortfall to the bit, whether the risk run built its own network or took the ensemble.
"""

from __future__ import annotations

import numpy as np
import pytest

from critmin.errors import ConfigError
from critmin.reference.catalog import Catalog
from critmin.supplychain.risk import assess_risk
from critmin.supplychain.shared_ensemble import ENSEMBLE_CHUNK, build_ensemble


@pytest.fixture(scope="module")
def cat():
    return Catalog()


def test_stockpile_draws_are_the_risk_ensembles_draws(cat):
    ens = build_ensemble(cat, seed=11)
    unmet = ens.unmet(12, ENSEMBLE_CHUNK)
    own, _frame, _meta = assess_risk("USA,JPN", draws=ENSEMBLE_CHUNK, seed=11, catalog=cat)
    given, _frame, _meta = assess_risk("USA,JPN", draws=ENSEMBLE_CHUNK, seed=11, catalog=cat, ensemble=ens)
    for consumer in ("USA", "JPN"):
        mine = unmet.sel(consumer=consumer).mean("draw")
        for ds in (own, given):
            theirs = ds["expected_shortfall"].sel(consumer=consumer).reindex_like(mine)
            np.testing.assert_array_equal(mine.values, theirs.values)
    first = build_ensemble(cat, seed=11).unmet(12, 500)
    np.testing.assert_array_equal(first.values, unmet.isel(draw=slice(0, 500)).values)
    assert ens.unmet(12, 500).attrs["seed"] == 11
    assert "seed 11" in ens.describe(12, 500) and "--months 12" in ens.describe(12, 500)


def test_an_ensemble_that_does_not_match_the_run_is_refused(cat):
    ens = build_ensemble(cat, seed=11)
    with pytest.raises(ConfigError, match="seed"):
        assess_risk("USA", draws=10, seed=12, catalog=cat, ensemble=ens)
    with pytest.raises(ConfigError, match="KOR"):
        assess_risk("KOR", draws=10, seed=11, catalog=cat, ensemble=ens)
