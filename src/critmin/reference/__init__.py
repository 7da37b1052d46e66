"""Reference data: the only code that reads raw public sources (``sources/``) and the bundled dataset (``catalog``)."""
