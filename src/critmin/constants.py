"""Dimension names, stage order and the few fixed labels shared by every layer."""

COMMODITY, STAGE, COUNTRY, PARTNER, YEAR, SCENARIO, DRAW = (
    "commodity", "stage", "country", "partner", "year", "scenario", "draw")
IMPORTER, EXPORTER, INDICATOR = "importer", "exporter", "indicator"

#: Supply-chain stages, upstream to downstream.
STAGES = ("mine", "refine", "metal", "component")

#: Pseudo country codes used in long tables for rows that are not a country.
#: ``ROW`` is a residual ("Other countries"), ``WLD`` a reported world total and
#: ``XNA`` a trade partner that is not a country (e.g. BACI "Areas nes").
RESIDUAL, WORLD, UNALLOCATED = "ROW", "WLD", "XNA"
PSEUDO_COUNTRIES = (RESIDUAL, WORLD, UNALLOCATED)

#: Row types in production and reserves tables.
ROW_COUNTRY, ROW_RESIDUAL, ROW_TOTAL = "country", "residual", "total"

#: The six Worldwide Governance Indicators.
WGI_INDICATORS = ("va", "pv", "ge", "rq", "rl", "cc")

#: Characterisation-factor reference: GeoPolRisk × price of copper (USD/kg) in the
#: geopolrisk-py reference implementation.
GEOPOLRISK_CU_REFERENCE = 0.409412948
