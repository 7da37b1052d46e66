"""Run defaults of the pricing model, in a module with no heavy imports (the CLI reads them at start-up)."""

#: Default discount rate per year. A round nominal input, not a cited rate: the price paths are nominal, so the
#: rate must be nominal too. Pass ``--rate`` for an agency's own rate.
DEFAULT_RATE = 0.05
DEFAULT_PATHS = 10_000
DEFAULT_SEED = 2025
STEPS_PER_YEAR = 12
