"""Window planning: granularity, lookback, clamping, DST."""

from __future__ import annotations

import datetime as dt

import pytest

from tap_event_exports.engine.durations import format_duration, parse_duration
from tap_event_exports.engine.windows import (
    DayGranularity,
    SecondGranularity,
    Window,
    plan_windows,
)

UTC = dt.timezone.utc


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1D", dt.timedelta(days=1)),
        ("PT6H", dt.timedelta(hours=6)),
        ("P1DT12H", dt.timedelta(days=1, hours=12)),
        ("P2W", dt.timedelta(days=14)),
        ("PT90S", dt.timedelta(seconds=90)),
        ("pt2h", dt.timedelta(hours=2)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "1D", "P1M", "P1Y", "P1DT", "6h", "PT-1H"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_duration(text)


def test_format_duration_round_trips():
    for text in ("P1D", "PT6H", "P1DT12H", "PT30M"):
        assert format_duration(parse_duration(text)) == text


def test_day_windows_align_to_local_midnight():
    seoul = DayGranularity("Asia/Seoul")
    plan = plan_windows(
        start_date=t("2025-01-05T10:00:00+00:00"),  # 19:00 in Seoul on the 5th
        end_date=None,
        now=t("2025-01-08T03:00:00+00:00"),  # 12:00 in Seoul on the 8th
        bookmark=None,
        lookback=dt.timedelta(days=1),
        step=dt.timedelta(days=1),
        granularity=seoul,
    )
    assert [str(w) for w in plan.windows] == [
        "[2025-01-04T15:00:00+00:00, 2025-01-05T15:00:00+00:00)",
        "[2025-01-05T15:00:00+00:00, 2025-01-06T15:00:00+00:00)",
        "[2025-01-06T15:00:00+00:00, 2025-01-07T15:00:00+00:00)",
        "[2025-01-07T15:00:00+00:00, 2025-01-08T15:00:00+00:00)",
    ]
    # inclusive dates sent to the API: one local day each, the end minus one day
    assert [seoul.inclusive_dates(w) for w in plan.windows][0] == (
        dt.date(2025, 1, 5),
        dt.date(2025, 1, 5),
    )
    assert plan.lost is None


def test_multi_day_window_and_partial_tail():
    utc_days = DayGranularity("UTC")
    plan = plan_windows(
        start_date=t("2025-01-01T00:00:00+00:00"),
        end_date=t("2025-01-06T00:00:00+00:00"),
        now=t("2025-02-01T00:00:00+00:00"),
        bookmark=None,
        lookback=dt.timedelta(0),
        step=dt.timedelta(days=2),
        granularity=utc_days,
    )
    # two-day windows lie on a grid counted from 1970-01-01 (2025-01-01 is day 20089, odd)
    assert [(w.start.day, w.end.day) for w in plan.windows] == [(31, 2), (2, 4), (4, 6)]
    assert utc_days.inclusive_dates(plan.windows[1]) == (dt.date(2025, 1, 2), dt.date(2025, 1, 3))


def test_bookmark_minus_lookback_rounded_down_never_before_start_date():
    plan = plan_windows(
        start_date=t("2025-01-01T00:00:00+00:00"),
        end_date=None,
        now=t("2025-01-10T12:00:00+00:00"),
        bookmark=t("2025-01-10T12:00:00+00:00"),
        lookback=dt.timedelta(days=1),
        step=dt.timedelta(days=1),
        granularity=DayGranularity("UTC"),
    )
    assert [w.start.day for w in plan.windows] == [9, 10]
    early = plan_windows(
        start_date=t("2025-01-01T00:00:00+00:00"),
        end_date=None,
        now=t("2025-01-02T12:00:00+00:00"),
        bookmark=t("2025-01-01T06:00:00+00:00"),
        lookback=dt.timedelta(days=7),
        step=dt.timedelta(days=1),
        granularity=DayGranularity("UTC"),
    )
    assert early.windows[0].start == t("2025-01-01T00:00:00+00:00")


def test_end_date_in_the_future_stops_at_now():
    plan = plan_windows(
        start_date=t("2025-01-01T00:00:00+00:00"),
        end_date=t("2030-01-01T00:00:00+00:00"),
        now=t("2025-01-02T06:30:00+00:00"),
        bookmark=None,
        lookback=dt.timedelta(0),
        step=dt.timedelta(hours=6),
        granularity=SecondGranularity(),
    )
    assert plan.windows[-1] == Window(
        t("2025-01-02T06:00:00+00:00"), t("2025-01-02T06:30:00+00:00")
    )
    assert len(plan.windows) == 6


def test_clamp_names_the_lost_range():
    plan = plan_windows(
        start_date=t("2025-01-01T00:00:00+00:00"),
        end_date=None,
        now=t("2025-03-01T00:00:00+00:00"),
        bookmark=None,
        lookback=dt.timedelta(days=1),
        step=dt.timedelta(days=1),
        granularity=DayGranularity("UTC"),
        earliest=t("2025-01-30T00:00:00+00:00"),
    )
    assert plan.lost == Window(t("2025-01-01T00:00:00+00:00"), t("2025-01-30T00:00:00+00:00"))
    assert plan.windows[0].start == t("2025-01-30T00:00:00+00:00")
    assert len(plan.windows) == 30


def test_lookback_before_earliest_is_not_lost():
    plan = plan_windows(
        start_date=t("2025-01-01T00:00:00+00:00"),
        end_date=None,
        now=t("2025-03-01T00:00:00+00:00"),
        bookmark=t("2025-01-30T00:00:00+00:00"),
        lookback=dt.timedelta(days=3),
        step=dt.timedelta(days=1),
        granularity=DayGranularity("UTC"),
        earliest=t("2025-01-29T00:00:00+00:00"),
    )
    assert plan.lost is None
    assert plan.windows[0].start == t("2025-01-29T00:00:00+00:00")


def test_day_windows_across_dst_stay_on_midnight():
    berlin = DayGranularity("Europe/Berlin")
    plan = plan_windows(
        start_date=t("2025-03-29T00:00:00+01:00"),
        end_date=t("2025-04-01T00:00:00+02:00"),
        now=t("2025-05-01T00:00:00+00:00"),
        bookmark=None,
        lookback=dt.timedelta(0),
        step=dt.timedelta(days=1),
        granularity=berlin,
    )
    lengths = [(w.end - w.start) / dt.timedelta(hours=1) for w in plan.windows]
    assert lengths == [24, 23, 24]
    assert [berlin.inclusive_dates(w)[0].day for w in plan.windows] == [29, 30, 31]


def test_step_must_be_whole_days_for_day_apis():
    assert DayGranularity("UTC").check_step(dt.timedelta(hours=6)) is not None
    assert DayGranularity("UTC").check_step(dt.timedelta(days=2)) is None


def test_windows_are_on_a_fixed_grid_whatever_the_start():
    for start in ("2025-01-02T07:13:11+00:00", "2025-01-02T11:59:59+00:00"):
        plan = plan_windows(
            start_date=t(start),
            end_date=t("2025-01-03T00:00:00+00:00"),
            now=t("2025-02-01T00:00:00+00:00"),
            bookmark=None,
            lookback=dt.timedelta(0),
            step=dt.timedelta(hours=6),
            granularity=SecondGranularity(),
        )
        assert [w.start.hour for w in plan.windows][:2] in ([6, 12], [6, 12])
        assert plan.windows[-1].end == t("2025-01-03T00:00:00+00:00")


def test_halves():
    w = Window(t("2025-01-01T00:00:00+00:00"), t("2025-01-03T00:00:00+00:00"))
    first, second = w.halves(DayGranularity("UTC"))
    assert (first.end, second.start) == (t("2025-01-02T00:00:00+00:00"),) * 2
    one_day = Window(t("2025-01-01T00:00:00+00:00"), t("2025-01-02T00:00:00+00:00"))
    assert one_day.halves(DayGranularity("UTC")) is None


def test_exact_lookback_starts_at_bookmark_minus_lookback_then_joins_the_grid():
    """Keen's defaults (P1D windows, PT2H lookback) at hour 10: only 2 hours are re-read."""
    plan = plan_windows(
        start_date=t("2025-01-01T00:00:00+00:00"),
        end_date=None,
        now=t("2025-01-10T11:00:00+00:00"),
        bookmark=t("2025-01-10T10:00:00+00:00"),
        lookback=dt.timedelta(hours=2),
        step=dt.timedelta(days=1),
        granularity=SecondGranularity(),
        exact=True,
    )
    assert plan.windows == [Window(t("2025-01-10T08:00:00+00:00"), t("2025-01-10T11:00:00+00:00"))]
    longer = plan_windows(
        start_date=t("2025-01-01T00:00:00+00:00"),
        end_date=None,
        now=t("2025-01-12T01:00:00+00:00"),
        bookmark=t("2025-01-10T10:00:00.700+00:00"),
        lookback=dt.timedelta(hours=2),
        step=dt.timedelta(days=1),
        granularity=SecondGranularity(),
        exact=True,
    )
    assert longer.windows == [
        Window(t("2025-01-10T08:00:00+00:00"), t("2025-01-11T00:00:00+00:00")),
        Window(t("2025-01-11T00:00:00+00:00"), t("2025-01-12T00:00:00+00:00")),
        Window(t("2025-01-12T00:00:00+00:00"), t("2025-01-12T01:00:00+00:00")),
    ]


def test_exact_lookback_on_a_day_api_floors_to_local_midnight():
    plan = plan_windows(
        start_date=t("2025-01-01T00:00:00+09:00"),
        end_date=None,
        now=t("2025-01-10T15:00:00+09:00"),
        bookmark=t("2025-01-10T15:00:00+09:00"),
        lookback=dt.timedelta(days=1),
        step=dt.timedelta(days=3),
        granularity=DayGranularity("Asia/Seoul"),
        exact=True,
    )
    assert plan.windows[0].start == t("2025-01-09T00:00:00+09:00")
    assert all(w.end - w.start <= dt.timedelta(days=3) for w in plan.windows)


def test_a_first_run_starts_at_start_date_not_before():
    plan = plan_windows(
        start_date=t("2025-01-01T06:30:00+00:00"),
        end_date=t("2025-01-03T00:00:00+00:00"),
        now=t("2025-01-10T00:00:00+00:00"),
        bookmark=None,
        lookback=dt.timedelta(0),
        step=dt.timedelta(days=1),
        granularity=SecondGranularity(),
        exact=True,
    )
    assert plan.windows[0] == Window(t("2025-01-01T06:30:00+00:00"), t("2025-01-02T00:00:00+00:00"))


def test_a_window_is_cut_where_an_earlier_runs_pending_job_ends():
    from tap_event_exports.engine.jobs import JobLedger
    from tap_event_exports.engine.planning import resume_points

    state: dict = {}
    ledger = JobLedger(state)
    earlier = Window(t("2025-01-10T00:00:00+00:00"), t("2025-01-10T09:15:00+00:00"))
    ledger.put(earlier, {"job": "j-1"})
    today = Window(t("2025-01-10T00:00:00+00:00"), t("2025-01-10T12:00:00+00:00"))
    other = Window(t("2025-01-09T00:00:00+00:00"), t("2025-01-10T00:00:00+00:00"))
    assert resume_points([other, today], ledger) == [
        other,
        earlier,
        Window(t("2025-01-10T09:15:00+00:00"), t("2025-01-10T12:00:00+00:00")),
    ]
