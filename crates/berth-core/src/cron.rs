//! Cron schedules of scheduled tasks: a 5-field expression (or an `@` alias) evaluated in an
//! IANA time zone.
//!
//! The syntax is the one a Kubernetes CronJob accepts, so a schedule can be rendered to one:
//! `minute hour day-of-month month day-of-week`, each field `*`, a number, a range `a-b`, a step
//! `*/n` or `a-b/n`, or a comma list of those; month and weekday names (`JAN`, `MON`); `?` as
//! `*` in the day fields; weekday `7` is Sunday like `0`. When both day fields are restricted a
//! day matches either (classic cron). Aliases: `@hourly`, `@daily` (`@midnight`), `@weekly`,
//! `@monthly`, `@yearly` (`@annually`). Quartz extensions (`L`, `W`, `#`), seconds and years are
//! refused.
//!
//! Daylight saving time, as a Kubernetes CronJob with `timeZone` behaves: the expression is
//! matched against the wall clock of the zone; a wall clock time that does not exist (the
//! skipped hour when clocks spring forward) does not fire, and one that exists twice (the
//! repeated hour when clocks fall back) fires once, at its first occurrence. See docs/tasks.md.

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::NameError;

/// The input field of the expression in API bodies.
pub const SCHEDULE_FIELD: &str = "schedule";
/// The input field of the zone in API bodies.
pub const ZONE_FIELD: &str = "timeZone";
/// The zone used when none is given.
pub const DEFAULT_ZONE: &str = "UTC";
/// Longest expression accepted.
const EXPR_MAX: usize = 200;
/// Wall clock candidates inspected per `next_after` before giving up (a minutely schedule
/// meets at most 60 of them in a skipped or repeated hour).
const MAX_CANDIDATES: usize = 10_000;

struct FieldRule {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// `?` allowed (the day fields).
    question: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [FieldRule; 5] = [
    FieldRule {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        question: false,
    },
    FieldRule {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        question: false,
    },
    FieldRule {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        question: true,
    },
    FieldRule {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        question: false,
    },
    FieldRule {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        question: true,
    },
];

/// The aliases and what they mean.
pub const ALIASES: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// A validated schedule: expression + zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: croner::Cron,
    zone: Tz,
}

fn expr_error(message: impl Into<String>) -> NameError {
    NameError::new(SCHEDULE_FIELD, message)
}

fn field_error(index: usize, message: impl std::fmt::Display) -> NameError {
    expr_error(format!(
        "field {} ({}): {message}",
        index + 1,
        FIELDS[index].name
    ))
}

/// Parses an IANA zone name (`Europe/Berlin`, `UTC`); the error names the `timeZone` field.
pub fn parse_zone(zone: &str) -> Result<Tz, NameError> {
    let trimmed = zone.trim();
    if trimmed.is_empty() {
        return Err(NameError::new(
            ZONE_FIELD,
            "is empty; give an IANA time zone such as UTC, Europe/Berlin or America/New_York",
        ));
    }
    trimmed.parse::<Tz>().map_err(|_| {
        NameError::new(
            ZONE_FIELD,
            format!(
                "unknown time zone {zone:?}; give an IANA name such as UTC, Europe/Berlin, \
                 America/New_York or Asia/Kolkata (names are case-sensitive)"
            ),
        )
    })
}

/// One value of a field: a number in range or (month, weekday) a name.
fn parse_value(index: usize, text: &str) -> Result<u32, NameError> {
    let rule = &FIELDS[index];
    if text.is_empty() {
        return Err(field_error(
            index,
            "empty value (check for a stray ',', '-' or '/')",
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = text
            .parse()
            .map_err(|_| field_error(index, format!("{text} is not a number")))?;
        if n < rule.min || n > rule.max {
            return Err(field_error(
                index,
                format!("{n} is out of range {}-{}", rule.min, rule.max),
            ));
        }
        return Ok(n);
    }
    let upper = text.to_ascii_uppercase();
    if let Some(i) = rule.names.iter().position(|n| *n == upper) {
        // Months count from 1, weekdays from 0 (Sunday).
        return Ok(i as u32 + rule.min);
    }
    let hint = if matches!(upper.as_str(), "L" | "W" | "LW") || upper.contains(['#', 'L', 'W']) {
        " (the Quartz extensions L, W and # are not supported)"
    } else {
        ""
    };
    let allowed = if rule.names.is_empty() {
        format!("a number {}-{}", rule.min, rule.max)
    } else {
        format!(
            "a number {}-{} or a name {}-{}",
            rule.min,
            rule.max,
            rule.names[0],
            rule.names[rule.names.len() - 1]
        )
    };
    Err(field_error(
        index,
        format!("{text:?} is not {allowed}{hint}"),
    ))
}

/// Checks one field: `*`, `?`, values, ranges, steps, lists.
fn validate_field(index: usize, text: &str) -> Result<(), NameError> {
    let rule = &FIELDS[index];
    if text == "?" {
        return if rule.question {
            Ok(())
        } else {
            Err(field_error(
                index,
                "`?` is only allowed in the day-of-month and day-of-week fields",
            ))
        };
    }
    if index == 4 && text.starts_with('+') {
        return Err(field_error(
            index,
            "the `+` (day-of-month AND day-of-week) modifier is not supported",
        ));
    }
    for item in text.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if base == "*" {
            // The whole range.
        } else if let Some((a, b)) = base.split_once('-') {
            let a = parse_value(index, a)?;
            let b = parse_value(index, b)?;
            if a > b {
                return Err(field_error(
                    index,
                    format!("range {base} runs backwards (write the smaller value first)"),
                ));
            }
        } else {
            parse_value(index, base)?;
            if let Some(step) = step {
                return Err(field_error(
                    index,
                    format!(
                        "{item:?}: a step needs `*` or a range before the `/` (write {base}-{}/{step})",
                        rule.max
                    ),
                ));
            }
        }
        if let Some(step) = step {
            if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
                return Err(field_error(
                    index,
                    format!("step {step:?} in {item:?} is not a whole number"),
                ));
            }
            let n: u32 = step.parse().unwrap_or(u32::MAX);
            if n == 0 {
                return Err(field_error(
                    index,
                    format!("step 0 in {item:?}: must be at least 1"),
                ));
            }
            if n > rule.max - rule.min + 1 {
                return Err(field_error(
                    index,
                    format!(
                        "step {n} in {item:?} is larger than the field's range {}-{}",
                        rule.min, rule.max
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Validates a 5-field expression or alias; returns the five fields.
fn parse_fields(expr: &str) -> Result<String, NameError> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(expr_error(
            "is empty; give 5 fields (minute hour day-of-month month day-of-week) or an alias \
             such as @daily",
        ));
    }
    if trimmed.len() > EXPR_MAX {
        return Err(expr_error(format!("is longer than {EXPR_MAX} characters")));
    }
    if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
        return Err(expr_error(
            "must not carry a time zone (TZ=…); set the timeZone field instead",
        ));
    }
    if let Some(alias) = trimmed.strip_prefix('@') {
        let lower = format!("@{}", alias.to_ascii_lowercase());
        return ALIASES
            .iter()
            .find(|(a, _)| *a == lower)
            .map(|(_, fields)| (*fields).to_owned())
            .ok_or_else(|| {
                expr_error(format!(
                    "unknown alias {trimmed:?}; known: {}",
                    ALIASES
                        .iter()
                        .map(|(a, _)| *a)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            });
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(expr_error(format!(
            "has {} field(s); a schedule has exactly 5: minute hour day-of-month month \
             day-of-week (no seconds, no years), e.g. \"30 2 * * *\"",
            fields.len()
        )));
    }
    for (i, f) in fields.iter().enumerate() {
        validate_field(i, f)?;
    }
    Ok(fields.join(" "))
}

impl Schedule {
    /// Validates `expr` (5 fields or an alias) and `zone` (IANA name). Errors name the field
    /// (`schedule` or `timeZone`) and, for the expression, the position: `field 2 (hour): 24 is
    /// out of range 0-23`.
    pub fn parse(expr: &str, zone: &str) -> Result<Self, NameError> {
        let fields = parse_fields(expr)?;
        let zone = parse_zone(zone)?;
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build()
            .parse(&fields)
            .map_err(|e| expr_error(format!("{fields:?} is not valid: {e}")))?;
        let schedule = Self {
            expr: expr.trim().to_owned(),
            cron,
            zone,
        };
        // Something like 30 February: valid fields that never meet.
        let probe = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
        if schedule.next_after(probe).is_none() {
            return Err(expr_error(format!(
                "{fields:?} never fires: no date has that day of month in those months"
            )));
        }
        Ok(schedule)
    }

    /// The expression as given (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire time strictly after `after`, or `None` when there is none (before the
    /// year 5000).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Tz>> {
        // Fire times are whole minutes: comparing with `after` cut to the second is exact.
        let after = after.with_nanosecond(0).unwrap_or(after);
        let mut cursor: NaiveDateTime = after.with_timezone(&self.zone).naive_local();
        for _ in 0..MAX_CANDIDATES {
            let local = self.cron.find_next_occurrence(&cursor, false).ok()?;
            cursor = local;
            let instant = match self.zone.from_local_datetime(&local) {
                // Skipped by a spring-forward: this wall clock time never happens.
                LocalResult::None => continue,
                LocalResult::Single(t) => t,
                // Repeated by a fall-back: fires once, at the first occurrence.
                LocalResult::Ambiguous(earlier, _) => earlier,
            };
            if instant.with_timezone(&Utc) > after {
                return Some(instant);
            }
        }
        None
    }

    /// The next `count` fire times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
        let mut out = Vec::with_capacity(count.min(1000));
        let mut at = after;
        while out.len() < count {
            match self.next_after(at) {
                Some(t) => {
                    at = t.with_timezone(&Utc);
                    out.push(t);
                }
                None => break,
            }
        }
        out
    }

    /// The latest fire time in `(after, until]`, and how many earlier ones that window holds.
    pub fn latest_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, u64)> {
        let mut latest = None;
        let mut skipped = 0u64;
        let mut at = after;
        while let Some(t) = self.next_after(at) {
            let t = t.with_timezone(&Utc);
            if t > until {
                break;
            }
            if latest.is_some() {
                skipped += 1;
            }
            latest = Some(t);
            at = t;
            // After a very long downtime: jump close to the end instead of walking every slot.
            if skipped > 1000 {
                let back = until - chrono::Duration::days(1);
                if back > at {
                    at = back;
                    skipped += 1; // at least one more was skipped in the jump
                }
            }
        }
        latest.map(|t| (t, skipped))
    }
}

/// RFC 3339 with the zone's offset, to the second: `2026-03-08T03:00:00-04:00`.
pub fn format_time<Z: TimeZone>(t: &DateTime<Z>) -> String
where
    Z::Offset: std::fmt::Display,
{
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
        Schedule::parse(expr, zone)
            .unwrap()
            .upcoming(utc(after), n)
            .iter()
            .map(format_time)
            .collect()
    }

    #[test]
    fn plain_schedules_in_utc() {
        assert_eq!(
            next("*/15 * * * *", "UTC", "2026-01-01T00:07:30Z", 3),
            [
                "2026-01-01T00:15:00+00:00",
                "2026-01-01T00:30:00+00:00",
                "2026-01-01T00:45:00+00:00"
            ]
        );
        // Strictly after: a fire time equal to `after` is not repeated.
        assert_eq!(
            next("0 * * * *", "UTC", "2026-01-01T01:00:00Z", 1),
            ["2026-01-01T02:00:00+00:00"]
        );
        assert_eq!(
            next("@daily", "UTC", "2026-01-01T01:00:00Z", 1),
            ["2026-01-02T00:00:00+00:00"]
        );
        assert_eq!(
            next("@weekly", "UTC", "2026-01-01T00:00:00Z", 1),
            ["2026-01-04T00:00:00+00:00"] // a Sunday
        );
        assert_eq!(
            next("@monthly", "UTC", "2026-01-15T00:00:00Z", 1),
            ["2026-02-01T00:00:00+00:00"]
        );
        assert_eq!(
            next("@yearly", "UTC", "2026-01-15T00:00:00Z", 1),
            ["2027-01-01T00:00:00+00:00"]
        );
        assert_eq!(
            next("@hourly", "UTC", "2026-01-15T00:59:59Z", 1),
            ["2026-01-15T01:00:00+00:00"]
        );
        // Names, 7 = Sunday, lists and ranges with steps.
        assert_eq!(
            next("0 9 * JAN sun", "UTC", "2026-01-01T00:00:00Z", 2),
            ["2026-01-04T09:00:00+00:00", "2026-01-11T09:00:00+00:00"]
        );
        assert_eq!(
            next("0 9 * * 7", "UTC", "2026-01-01T00:00:00Z", 1),
            ["2026-01-04T09:00:00+00:00"]
        );
        assert_eq!(
            next("5,10-20/5 8 * * *", "UTC", "2026-01-01T00:00:00Z", 4),
            [
                "2026-01-01T08:05:00+00:00",
                "2026-01-01T08:10:00+00:00",
                "2026-01-01T08:15:00+00:00",
                "2026-01-01T08:20:00+00:00"
            ]
        );
        // Both day fields restricted: either matches (classic cron).
        assert_eq!(
            next("0 0 13 * FRI", "UTC", "2026-02-01T00:00:00Z", 3),
            [
                "2026-02-06T00:00:00+00:00",
                "2026-02-13T00:00:00+00:00",
                "2026-02-20T00:00:00+00:00"
            ]
        );
        // Leap day.
        assert_eq!(
            next("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", 1),
            ["2028-02-29T00:00:00+00:00"]
        );
    }

    /// America/New_York: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
    #[test]
    fn new_york_dst_changes() {
        let ny = "America/New_York";
        let cases: &[(&str, &str, usize, &[&str])] = &[
            // Spring forward: 02:30 does not exist that day, so it does not fire.
            (
                "30 2 * * *",
                "2026-03-07T12:00:00Z", // 07:00 EST on the 7th
                3,
                &[
                    "2026-03-09T02:30:00-04:00",
                    "2026-03-10T02:30:00-04:00",
                    "2026-03-11T02:30:00-04:00",
                ],
            ),
            // Hourly across the jump: 01:00 EST, then 03:00 EDT (02:00 is skipped).
            (
                "0 * * * *",
                "2026-03-08T05:30:00Z",
                3,
                &[
                    "2026-03-08T01:00:00-05:00",
                    "2026-03-08T03:00:00-04:00",
                    "2026-03-08T04:00:00-04:00",
                ],
            ),
            // Every 30 minutes across the jump: 01:30 EST, then 03:00 EDT.
            (
                "*/30 * * * *",
                "2026-03-08T06:10:00Z",
                2,
                &["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"],
            ),
            // A time after the gap is unaffected.
            (
                "0 3 * * *",
                "2026-03-08T05:00:00Z",
                1,
                &["2026-03-08T03:00:00-04:00"],
            ),
            // Fall back: 01:30 happens twice and fires once, at its first (EDT) occurrence.
            (
                "30 1 * * *",
                "2026-10-31T12:00:00Z",
                3,
                &[
                    "2026-11-01T01:30:00-04:00",
                    "2026-11-02T01:30:00-05:00",
                    "2026-11-03T01:30:00-05:00",
                ],
            ),
            // Hourly across the repeated hour: 00:00, 01:00 EDT, then 02:00 EST (no second 01:00).
            (
                "0 * * * *",
                "2026-11-01T03:30:00Z",
                3,
                &[
                    "2026-11-01T00:00:00-04:00",
                    "2026-11-01T01:00:00-04:00",
                    "2026-11-01T02:00:00-05:00",
                ],
            ),
            // Starting inside the second 01:xx (EST): 01:45 fired already (EDT), next is 02:00.
            (
                "*/15 * * * *",
                "2026-11-01T06:20:00Z", // 01:20 EST
                2,
                &["2026-11-01T02:00:00-05:00", "2026-11-01T02:15:00-05:00"],
            ),
            // Starting inside the first 01:xx (EDT): the rest of the hour, then 02:00 EST.
            (
                "*/30 * * * *",
                "2026-11-01T05:10:00Z", // 01:10 EDT
                2,
                &["2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00"],
            ),
        ];
        for (expr, after, n, want) in cases {
            let want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(next(expr, ny, after, *n), want, "{expr} after {after}");
        }
    }

    /// Asia/Kolkata is +05:30 all year: half-hour offsets come through, no DST.
    #[test]
    fn kolkata_half_hour_offset() {
        assert_eq!(
            next("0 9 * * *", "Asia/Kolkata", "2026-03-08T00:00:00Z", 2),
            ["2026-03-08T09:00:00+05:30", "2026-03-09T09:00:00+05:30"]
        );
        // 09:00 IST is 03:30 UTC.
        let s = Schedule::parse("0 9 * * *", "Asia/Kolkata").unwrap();
        let t = s.next_after(utc("2026-03-08T00:00:00Z")).unwrap();
        assert_eq!(t.with_timezone(&Utc), utc("2026-03-08T03:30:00Z"));
        // Hourly in local time = at :30 UTC, also across US/EU DST dates.
        assert_eq!(
            next("0 * * * *", "Asia/Kolkata", "2026-11-01T05:45:00Z", 2),
            ["2026-11-01T12:00:00+05:30", "2026-11-01T13:00:00+05:30"]
        );
        assert_eq!(
            next("@daily", "Asia/Kolkata", "2026-03-08T18:29:00Z", 1),
            ["2026-03-09T00:00:00+05:30"]
        );
    }

    #[test]
    fn latest_between_counts_the_skipped() {
        let s = Schedule::parse("*/10 * * * *", "UTC").unwrap();
        let (latest, skipped) = s
            .latest_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:35:00Z"))
            .unwrap();
        assert_eq!(latest, utc("2026-01-01T00:30:00Z"));
        assert_eq!(skipped, 2); // 00:10 and 00:20
        assert!(
            s.latest_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:09:00Z"))
                .is_none()
        );
        // A long downtime does not walk every slot.
        let (latest, skipped) = Schedule::parse("* * * * *", "UTC")
            .unwrap()
            .latest_between(utc("2025-01-01T00:00:00Z"), utc("2026-01-01T00:00:30Z"))
            .unwrap();
        assert_eq!(latest, utc("2026-01-01T00:00:00Z"));
        assert!(skipped > 1000);
    }

    #[test]
    fn errors_name_the_field_and_position() {
        let err = |expr: &str| Schedule::parse(expr, "UTC").unwrap_err();
        let cases: &[(&str, &str)] = &[
            ("", "is empty"),
            ("* * * *", "has 4 field(s)"),
            ("0 * * * * *", "has 6 field(s)"),
            ("60 * * * *", "field 1 (minute): 60 is out of range 0-59"),
            ("0 24 * * *", "field 2 (hour): 24 is out of range 0-23"),
            (
                "0 0 0 * *",
                "field 3 (day of month): 0 is out of range 1-31",
            ),
            ("0 0 * 13 *", "field 4 (month): 13 is out of range 1-12"),
            ("0 0 * * 8", "field 5 (day of week): 8 is out of range 0-7"),
            (
                "0 0 * FOO *",
                "field 4 (month): \"FOO\" is not a number 1-12 or a name JAN-DEC",
            ),
            (
                "0 0 L * *",
                "field 3 (day of month): \"L\" is not a number 1-31",
            ),
            ("0 0 * * 5#2", "not supported"),
            ("*/0 * * * *", "field 1 (minute): step 0"),
            ("5/10 * * * *", "field 1 (minute): \"5/10\": a step needs"),
            ("0 5-3 * * *", "field 2 (hour): range 5-3 runs backwards"),
            ("0 0 ? * ?", ""),
            ("0 ? * * *", "field 2 (hour): `?` is only allowed"),
            ("0 0 30 2 *", "never fires"),
            ("@every 5m", "unknown alias"),
            ("@reboot", "unknown alias"),
            ("TZ=UTC 0 0 * * *", "timeZone field"),
            ("1,,2 * * * *", "field 1 (minute): empty value"),
        ];
        for (expr, want) in cases {
            if want.is_empty() {
                assert!(Schedule::parse(expr, "UTC").is_ok(), "{expr} should parse");
                continue;
            }
            let e = err(expr);
            assert_eq!(e.field, "schedule", "{expr}");
            assert!(e.message.contains(want), "{expr}: {}", e.message);
        }
    }

    #[test]
    fn zones() {
        let e = Schedule::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e.field, "timeZone");
        assert!(e.message.contains("unknown time zone"), "{}", e.message);
        assert_eq!(
            Schedule::parse("* * * * *", "").unwrap_err().field,
            "timeZone"
        );
        assert_eq!(
            Schedule::parse("@daily", "Europe/Berlin").unwrap().zone(),
            chrono_tz::Europe::Berlin
        );
    }
}
