"""Outputs: tables and exports."""
