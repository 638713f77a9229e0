"""Vendor-neutral machinery: windows, state, HTTP policy, downloads, export jobs and CSV records.

Nothing in this package imports from ``tap_event_exports.vendors``.
"""
