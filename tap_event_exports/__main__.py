"""``python -m tap_event_exports``: the tap's command line."""

from tap_event_exports.tap import TapEventExports

TapEventExports.cli()
