"""Shared types, clock, errors and the contracts between stages. Imports nothing else of ours."""
