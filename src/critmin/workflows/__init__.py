"""Load → compute → shape: the one place where IO meets the pure core.

CLI commands and the Python API call these functions; nothing here writes files (writing is done by
:mod:`critmin.report.export` once everything succeeded). :mod:`.assess` runs the criticality methods;
:mod:`.priorities` is the priority engine that combines them with stages, reliance and export controls.
"""

from critmin.workflows.assess import (
    DEFAULT_IMPORTERS,
    METHODS,
    TIDY_COLUMNS,
    assess,
    assess_many,
    concentration,
    default_year,
    export_restriction_t,
    tidy,
)
from critmin.workflows.priorities import (
    PriorityResult,
    allied_members,
    data_years,
    parse_as_of,
    priorities,
    priorities_with_assessments,
    priority_engine,
    stage_vulnerabilities,
)

__all__ = ["DEFAULT_IMPORTERS", "METHODS", "TIDY_COLUMNS", "PriorityResult", "allied_members", "assess",
           "assess_many", "concentration", "data_years", "default_year", "export_restriction_t", "parse_as_of",
           "priorities", "priorities_with_assessments", "priority_engine", "stage_vulnerabilities", "tidy"]
