"""singer-sdk's standard tap tests, offline against the fake Dfinery."""

from __future__ import annotations

import datetime as dt

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_event_exports.sandbox.dfinery import (
    EVENT_COLUMNS,
    DfineryFake,
    generate_events,
    generate_profiles,
)
from tap_event_exports.tap import TapEventExports
from tests.conftest import SEOUL, seoul_today

_first = seoul_today() - dt.timedelta(days=2)
FAKE = DfineryFake(
    events=generate_events(start=_first, days=3, per_day=40),
    profiles=generate_profiles(20),
).start()

SAMPLE_CONFIG = {
    "start_date": dt.datetime.combine(_first, dt.time(0), tzinfo=SEOUL).isoformat(),
    "dfinery": {
        "service_id": FAKE.service_id,
        "api_token": FAKE.token,
        "base_url": FAKE.base_url,
        "user_profiles": {},
        # Custom properties declared up front are part of the discovered catalog (the suite
        # compares records with it); undeclared ones would arrive with a new SCHEMA message.
        "column_types": {
            **{c: "string" for c in EVENT_COLUMNS if not c.startswith("df_") or "custom" in c},
            "custom_event_p_boolean": "boolean",
            "custom_event_p_long_list": "array",
            "custom_user_datetime": "date-time",
            "scenario_list_string": "array",
        },
    },
}

TestTapEventExports = get_tap_test_class(
    tap_class=TapEventExports,
    config=SAMPLE_CONFIG,
    suite_config=SuiteConfig(max_records_limit=50),
)
