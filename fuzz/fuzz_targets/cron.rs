//! Parses arbitrary UTF-8 as a cron expression (first line) and a time zone (second line).
//! `Schedule::parse` must never panic; an accepted schedule fires (it is checked to), its
//! upcoming times are strictly increasing, and its normalized expression parses again to the
//! same next firing.

#![no_main]

use berth_core::cron::Schedule;
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let (expr, zone) = input.split_once('\n').unwrap_or((input, "UTC"));
    let Ok(schedule) = Schedule::parse(expr, zone) else {
        return;
    };
    let start = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
    let upcoming = schedule.upcoming(start, 5);
    for pair in upcoming.windows(2) {
        assert!(pair[0] < pair[1], "{input:?}: {upcoming:?}");
    }
    if let Some(first) = upcoming.first() {
        assert!(first.with_timezone(&Utc) > start, "{input:?}: {first}");
    }
    let again =
        Schedule::parse(schedule.expr(), zone).expect("an accepted expression parses again");
    assert_eq!(
        again.next_after(start),
        schedule.next_after(start),
        "{input:?}"
    );
});
