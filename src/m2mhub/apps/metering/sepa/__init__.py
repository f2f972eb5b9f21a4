"""SEPA direct debits: pain.008 export, pain.002 / camt.054 import, bank identifiers.

Import from :mod:`m2mhub.apps.metering.payments`, which is the public face of
electronic payments; the modules here are split by message family.
"""
