from tap_event_exports.tap import TapEventExports

TapEventExports.cli()
