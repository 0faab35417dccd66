"""Gin files for the local engine and for real T5X (package data)."""
