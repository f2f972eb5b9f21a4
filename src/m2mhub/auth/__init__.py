"""Credentials: API keys for people and systems, tokens for devices, passwords."""
