"""Pure marketplace rules: orders, eligibility, pricing and support, matching, ledger, audit log.

No IO, no web framework, no database: the service layer stores state and calls these functions. Money and
quantities are :class:`decimal.Decimal` (USD, USD/kg, kg); time is an integer sequence number.
"""
