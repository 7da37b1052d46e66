"""Column contracts of the bundled long tables.

Every table carries ``source`` (a source id listed in the MANIFEST) so that each
figure can be traced to its publisher and licence. Parsers in ``sources/`` return
frames with exactly these columns (in this order); ``build`` checks them.
"""

from __future__ import annotations

# column name -> (pandas dtype, meaning)
TABLES: dict[str, dict[str, tuple[str, str]]] = {
    "production": {
        "commodity": ("string", "critmin commodity id, e.g. rare-earths"),
        "stage": ("string", "mine | refine | metal | component"),
        "country": ("string", "ISO3; ROW for 'Other countries', WLD for 'World total'"),
        "row_type": ("string", "country | residual | total"),
        "year": ("int64", "calendar year"),
        "value": ("float64", "quantity in `unit`"),
        "unit": ("string", "t, kg, ... (always in SI mass units after harmonisation)"),
        "basis": ("string", "what the tonne is of: contained metal, REO equivalent, gross weight, Li content, ..."),
        "estimated": ("bool", "the source marks the figure as an estimate"),
        "series": ("string", "the source's own series label (e.g. MCS 'Mine production')"),
        "source": ("string", "source id (MANIFEST)"),
    },
    "reserves": {
        "commodity": ("string", ""), "country": ("string", ""), "row_type": ("string", ""),
        "year": ("int64", "year the reserves estimate refers to"), "value": ("float64", ""),
        "unit": ("string", ""), "basis": ("string", ""), "qualifier": ("string", "'', '>' or '<' as published"),
        "series": ("string", ""), "source": ("string", ""),
    },
    "trade": {
        "commodity": ("string", "critmin commodity id of the HS6 code"),
        "stage": ("string", "stage of the traded product"),
        "hs6": ("string", "HS six-digit code, in the nomenclature given by `nomenclature`"),
        "nomenclature": ("string", "HS nomenclature of hs6: HS92 or HS17 (empty in user tables that do not give it)"),
        "exporter": ("string", "ISO3 (XNA for BACI non-country areas)"),
        "importer": ("string", "ISO3"),
        "year": ("int64", ""),
        "quantity": ("float64", "gross weight of the traded product; NaN where not published (BACI HS17 2022 rows "
                                "carry values only)"),
        "unit": ("string", "t"),
        "value_usd": ("float64", "FOB value, current USD"),
        "source": ("string", ""),
    },
    "us_salient": {
        "commodity": ("string", ""), "year": ("int64", ""),
        "statistic": ("string", "production | imports | exports | apparent_consumption | net_import_reliance | "
                                "price | stocks | employment | other"),
        "detail": ("string", "the source's own variable label"),
        "value": ("float64", "best numeric reading (NaN when withheld / not available)"),
        "value_low": ("float64", "lower bound implied by the published code (e.g. '>95' -> 95)"),
        "value_high": ("float64", "upper bound implied by the published code (e.g. '>95' -> 100)"),
        "code": ("string", "published text code: '', '>95', 'E' (net exporter), 'W' (withheld), 'NA', ..."),
        "unit": ("string", ""), "source": ("string", ""),
    },
    "import_sources": {
        "commodity": ("string", ""), "partner": ("string", "ISO3 or ROW"),
        "period": ("string", "e.g. 2021-24"), "share": ("float64", "fraction 0-1 of US imports"),
        "detail": ("string", ""), "source": ("string", ""),
    },
    "governance": {
        "country": ("string", "ISO3"), "year": ("int64", ""),
        "indicator": ("string", "va | pv | ge | rq | rl | cc"),
        "value": ("float64", "WGI estimate, standard-normal units (about -2.5 .. 2.5)"),
        "source": ("string", ""),
    },
    "prices": {
        "commodity": ("string", ""), "series": ("string", "source series code"),
        "period": ("string", "YYYY-MM for monthly, YYYY for annual"),
        "frequency": ("string", "monthly | annual"), "value": ("float64", ""),
        "unit": ("string", "e.g. USD/t, USD/kg"), "source": ("string", ""),
    },
    "deposits": {
        "deposit_id": ("string", "dataset-prefixed id"), "name": ("string", ""),
        "country": ("string", "ISO3"), "lat": ("float64", ""), "lon": ("float64", ""),
        "commodities": ("string", "';'-joined critmin commodity ids"),
        "deposit_type": ("string", ""), "dataset": ("string", "pp1802 | major | lithium-us"),
        "source": ("string", ""),
    },
    "us_trade": {
        "flow": ("string", "import (imports for consumption) | export (domestic exports)"),
        "hts4": ("string", "HTS 4-digit heading as text, e.g. 2846"),
        "commodity": ("string", "critmin commodity id of the heading (mappings/hts4.csv; headings mix products)"),
        "stage": ("string", "stage of the heading's products: mine | refine | metal | component"),
        "partner": ("string", "ISO3 of the partner country (only the 18 queried partners; no world total)"),
        "period": ("string", "YYYY for a calendar year; YYYY-YTDmm for January..month mm year-to-date (2026-YTD04)"),
        "months": ("int64", "months covered by the period: 12 for a year, mm for YYYY-YTDmm"),
        "value_usd": ("float64", "current USD: customs value (imports) or FAS value (exports)"),
        "quantity": ("float64", "first unit of quantity in quantity_unit; NaN when suppressed or not collected"),
        "quantity_unit": ("string", "t for gross mass (kg, metric tons, grams converted); else as published "
                                    "(number, component kilograms, ...)"),
        "source": ("string", ""),
    },
    # Which commodities a published critical-minerals list names, one row per critmin id: methods and reports can
    # flag a commodity as "on the list" without re-reading the source. ``label`` keeps the source's own names so
    # that the mapping to critmin ids can be checked (e.g. 'Alumina;Aluminum' -> aluminum).
    "critical_lists": {
        "commodity": ("string", "critmin commodity id"),
        "list": ("string", "the list, e.g. 'USGS 2025 critical minerals'"),
        "label": ("string", "the source's name(s) mapped to the id, ';'-joined, sorted"),
        "source": ("string", "source id (MANIFEST)"),
    },
    # The European Commission's critical-raw-materials assessments (source eu-crm). ``material`` is the EU's own
    # label; ``commodity`` the critmin id from mappings/eu_materials.csv ('' where none fits: EU groups such as
    # HREEs, materials critmin does not cover). Stage: the EU's extraction -> mine, processing -> refine.
    "eu_crm_scores": {
        "material": ("string", "EU label as published, whitespace-normalised (2023 'Aluminium' -> 'Aluminium/bauxite')"),
        "commodity": ("string", "critmin commodity id, or '' when none fits"),
        "year": ("int64", "assessment year: 2011, 2014, 2017, 2020, 2023"),
        "sr": ("float64", "published supply risk (scaled, printed to 0.1); NaN where not assessed ('-')"),
        "ei": ("float64", "published economic importance (scaled, printed to 0.1); NaN where not assessed"),
        "source": ("string", "source id (MANIFEST)"),
    },
    "eu_crm_supply": {
        "material": ("string", "EU label as published, whitespace-normalised"),
        "commodity": ("string", "critmin commodity id, or '' when none fits"),
        "stage": ("string", "mine (EU extraction) | refine (EU processing)"),
        "scope": ("string", "global (global supply) | eu_sourcing (EU sourcing: domestic production + imports; "
                            "shares >= 1 % only)"),
        "country": ("string", "ISO3; ROW for 'Other'/rest-of-world labels"),
        "share": ("float64", "fraction 0-1 of the material's supply at this stage and scope, 2023 assessment; "
                             "'<0.1%' -> 0.0005 (half the bound)"),
        "share_text": ("string", "the share as published, e.g. '43.4%', '<0.1%'"),
        "t": ("float64", "export-restriction factor t of the country (1 = none; EU members 0.8, restricting "
                         "countries 1.1-1.5)"),
        "source": ("string", "source id (MANIFEST)"),
    },
    "eu_crm_2017": {
        "material": ("string", "EU label as published in the 2017 criticality assessments (78 materials)"),
        "commodity": ("string", "critmin commodity id, or '' when none fits"),
        "stage": ("string", "bottleneck stage assessed: mine (extraction) | refine (processing)"),
        "sr": ("float64", "published supply risk (Table 3, printed to 0.1)"),
        "ei": ("float64", "published economic importance (Table 3, printed to 0.1)"),
        "ir": ("float64", "import reliance, fraction 0-1 (whole percent; negative IR set to 0 by the study); "
                          "NaN where N/A"),
        "eol_rir": ("float64", "end-of-life recycling input rate, fraction 0-1 (whole percent)"),
        "supply_used_in_sr": ("string", "supply data of the published SR: 'GS + EUS' (both, weighted by IR), "
                                        "'GS only' (global supply), 'EUS only' (EU sourcing)"),
        "si_ei": ("float64", "substitution index of EI (Table 18, printed to 0.1)"),
        "si_sr": ("float64", "substitution index of SR (Table 18, printed to 0.1)"),
        "hhi_wgi_t_gs": ("float64", "HHI_WGI,t of global supply (scaled 0-10, printed to 0.1); NaN where N/A"),
        "hhi_wgi_t_eu": ("float64", "HHI_WGI,t of EU sourcing (scaled 0-10, printed to 0.1); NaN where N/A"),
        "sr_gs_only": ("float64", "SR from global supply only (Table 19)"),
        "sr_eu_only": ("float64", "SR from EU sourcing only (Table 19); NaN where N/A"),
        "sr_gs_and_eu": ("float64", "SR from both, weighted by IR (Table 19); NaN where N/A"),
        "source": ("string", "source id (MANIFEST)"),
    },
}

#: The cited curated tables are carried with their own columns (plus normalised
#: ``country`` ISO3 and ``commodity`` ids where they name one) and their citations.
CURATED_TABLES = ("processing_shares", "export_controls", "projects", "stockpile_programs", "demand_parameters")
