//! Maintenance windows: when a site accepts disruptive changes such as a release upgrade.
//!
//! A window (`spec.maintenanceWindow` of a DizSite) opens at every time its five-field cron
//! `schedule` matches and stays open for `duration`. Everything is evaluated in the window's
//! `timeZone` (IANA name, default `Europe/Berlin`), so `0 2 * * 6` means 02:00 on the wall clocks
//! of the hospital, summer and winter alike.
//!
//! # Schedule syntax
//!
//! `minute hour day-of-month month day-of-week`, each field a comma-separated list of `*`, a
//! value `a`, a range `a-b`, optionally followed by a step `/n` (`*/15`, `8-18/2`; `a/n` means
//! `a` up to the field's maximum). Months may be written `JAN`…`DEC`, weekdays `SUN`…`SAT`
//! (any case); weekday `0` and `7` are both Sunday. As in Vixie cron: when both day-of-month and
//! day-of-week are restricted (neither field starts with `*`), a day matches if *either* matches
//! (`0 2 1 * MON` is the 1st of every month and every Monday); otherwise both must match.
//!
//! # Open, closed and overlapping windows
//!
//! An occurrence at instant `t` keeps the window open over `[t, t + duration)`. The duration is
//! elapsed time, not wall-clock time: a `2h` window from 01:00 on the night clocks spring forward
//! closes at 04:00 local time, after two real hours. Occurrences whose windows overlap or touch
//! form one longer window; its closing time is followed for at most [`MERGE_HORIZON`] (a schedule
//! that keeps the window open longer is reported as closing at the horizon and is simply
//! re-evaluated on the next reconcile).
//!
//! # Daylight saving time
//!
//! * **Spring forward** (Europe/Berlin, last Sunday of March, 02:00 → 03:00): a schedule at a
//!   local time that does not exist that night, e.g. `30 2 * * *`, still opens once, shifted
//!   forward by the length of the gap: at 03:30 CEST. A weekly window is therefore never skipped
//!   because of the clock change.
//! * **Fall back** (last Sunday of October, 03:00 → 02:00): a local time that happens twice, e.g.
//!   02:30, opens the window once, at the first of the two (02:30 CEST), as cron does.
//!
//! This is jiff's "compatible" disambiguation, the same rule RFC 5545 (iCalendar) and
//! `java.time` use.
//!
//! # Bounded search
//!
//! A schedule that can never match (`0 0 31 2 *`, 31 February) is refused when it is parsed, and
//! the search for the next occurrence gives up after [`MAX_SEARCH_DAYS`] (29 years, more than
//! any weekday/leap-year combination needs to recur) instead of looping.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::api::MaintenanceWindow;

/// How far ahead the closing time of overlapping occurrences is followed.
pub const MERGE_HORIZON: SignedDuration = SignedDuration::from_hours(7 * 24);

/// How many days ahead the next occurrence is searched for before the schedule is declared
/// never to match. 29 years cover every weekday/day-of-month/leap-day combination.
pub const MAX_SEARCH_DAYS: u32 = 29 * 366;

/// Local times shifted by a DST gap can land later than local times written after them, so
/// candidates are considered this far around the instant being searched from. Larger than any
/// regular clock change in the tz database.
const DST_SLACK: SignedDuration = SignedDuration::from_hours(3);

/// Whether a window is open now, and when that changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    Open { closes_at: Timestamp },
    Closed { opens_at: Timestamp },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "schedule {schedule:?} must have five fields (minute hour day-of-month month day-of-week), it has {found}"
    )]
    FieldCount { schedule: String, found: usize },
    #[error("schedule field {field} ({value:?}): {problem}")]
    Field {
        field: &'static str,
        value: String,
        problem: String,
    },
    #[error("schedule {0:?} never matches (no such day in any month)")]
    NeverMatches(String),
    #[error("duration {value:?}: {problem}; write it like 30m, 2h or 1h30m")]
    Duration {
        value: String,
        problem: &'static str,
    },
    #[error("unknown time zone {zone:?}: {message}")]
    UnknownTimeZone { zone: String, message: String },
    #[error("time arithmetic left the supported range: {0}")]
    OutOfRange(String),
}

impl WindowError {
    /// The field of `spec.maintenanceWindow` the problem is in, for messages that must say what
    /// to change.
    pub fn field_path(&self) -> &'static str {
        match self {
            WindowError::FieldCount { .. }
            | WindowError::Field { .. }
            | WindowError::NeverMatches(_) => "spec.maintenanceWindow.schedule",
            WindowError::Duration { .. } => "spec.maintenanceWindow.duration",
            WindowError::UnknownTimeZone { .. } => "spec.maintenanceWindow.timeZone",
            WindowError::OutOfRange(_) => "spec.maintenanceWindow",
        }
    }

    /// `<field path>: <problem>`.
    pub fn with_field_path(&self) -> String {
        format!("{}: {self}", self.field_path())
    }
}

impl From<jiff::Error> for WindowError {
    fn from(e: jiff::Error) -> Self {
        WindowError::OutOfRange(e.to_string())
    }
}

/// Parses a duration of the form `([0-9]+(h|m|s))+`, e.g. `2h`, `1h30m`, `90s`.
pub fn parse_duration(value: &str) -> Result<SignedDuration, WindowError> {
    let err = |problem| WindowError::Duration {
        value: value.to_string(),
        problem,
    };
    if value.is_empty() {
        return Err(err("it is empty"));
    }
    let mut total: i64 = 0;
    let mut number: Option<i64> = None;
    for c in value.chars() {
        if let Some(d) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(d)))
                    .ok_or_else(|| err("it is too long"))?,
            );
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(err("only digits followed by h, m or s are allowed")),
        };
        let n = number
            .take()
            .ok_or_else(|| err("a unit must follow a number"))?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| err("it is too long"))?;
    }
    if number.is_some() {
        return Err(err("the last number has no unit"));
    }
    // Bounded by the supported timestamp range, so adding it to any instant stays checkable.
    if total > 100 * 366 * 24 * 3600 {
        return Err(err("it is longer than a century"));
    }
    Ok(SignedDuration::from_secs(total))
}

/// A parsed five-field cron schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    source: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    dom_star: bool,
    dow_star: bool,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl FieldSpec {
    fn error(&self, value: &str, problem: impl Into<String>) -> WindowError {
        WindowError::Field {
            field: self.name,
            value: value.to_string(),
            problem: problem.into(),
        }
    }

    fn value(&self, field: &str, s: &str) -> Result<u32, WindowError> {
        let upper = s.to_ascii_uppercase();
        // Names count from the field's minimum: JAN = 1, SUN = 0.
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            return Ok(self.min + i as u32);
        }
        let v: u32 = s.parse().map_err(|_| {
            let names = if self.names.is_empty() {
                String::new()
            } else {
                format!(" or a name ({}…)", self.names[..3].join(", "))
            };
            self.error(field, format!("{s:?} is not a number{names}"))
        })?;
        if v < self.min || v > self.max {
            return Err(self.error(field, format!("{v} is outside {}-{}", self.min, self.max)));
        }
        Ok(v)
    }

    fn parse(&self, field: &str) -> Result<u64, WindowError> {
        let mut mask = 0u64;
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .map_err(|_| self.error(field, format!("step {s:?} is not a number")))?;
                    if step == 0 {
                        return Err(self.error(field, "a step must be at least 1"));
                    }
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(field, a)?, self.value(field, b)?);
                if a > b {
                    return Err(self.error(
                        field,
                        format!("range {range} runs backwards; write it as {b}-{a} or as a list"),
                    ));
                }
                (a, b)
            } else if range.is_empty() {
                return Err(self.error(field, "empty list item"));
            } else {
                let a = self.value(field, range)?;
                // `a/n` is "from a to the end, every n"; a bare value is just itself.
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                mask |= 1 << v;
                v += step;
            }
        }
        Ok(mask)
    }
}

fn has(mask: u64, v: i8) -> bool {
    (0..64).contains(&v) && mask & (1 << v) != 0
}

fn bits(mask: u64) -> impl Iterator<Item = i8> {
    (0..64i8).filter(move |v| mask & (1u64 << v) != 0)
}

impl Schedule {
    pub fn parse(schedule: &str) -> Result<Self, WindowError> {
        let fields: Vec<&str> = schedule.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(WindowError::FieldCount {
                schedule: schedule.to_string(),
                found: fields.len(),
            });
        };
        let mut days_of_week = DAY_OF_WEEK.parse(dow)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        let s = Schedule {
            source: fields.join(" "),
            minutes: MINUTE.parse(minute)?,
            hours: HOUR.parse(hour)?,
            days_of_month: DAY_OF_MONTH.parse(dom)?,
            months: MONTH.parse(month)?,
            days_of_week,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
        };
        if !s.can_match() {
            return Err(WindowError::NeverMatches(s.source));
        }
        Ok(s)
    }

    /// Catches impossible dates such as 31 February up front. Only needed when the day-of-week
    /// does not apply on its own: a restricted day-of-week matches some day of every month.
    fn can_match(&self) -> bool {
        if !self.dom_star && !self.dow_star {
            return true;
        }
        const MAX_DAYS: [i8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        bits(self.months).any(|m| {
            let max = MAX_DAYS[(m - 1) as usize];
            bits(self.days_of_month).any(|d| d <= max)
        })
    }

    fn matches_day(&self, date: Date) -> bool {
        if !has(self.months, date.month()) {
            return false;
        }
        let dom = has(self.days_of_month, date.day());
        let dow = has(self.days_of_week, date.weekday().to_sunday_zero_offset());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first occurrence strictly after `after`, as an instant, with local times read in
    /// `tz` (see the module docs for DST).
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Result<Timestamp, WindowError> {
        let start = tz.to_datetime(after).checked_sub(DST_SLACK)?;
        let mut best: Option<(Timestamp, DateTime)> = None;
        let mut day = start.date();
        for _ in 0..MAX_SEARCH_DAYS {
            if self.matches_day(day) {
                for h in bits(self.hours) {
                    for m in bits(self.minutes) {
                        let local = day.at(h, m, 0, 0);
                        if local < start {
                            continue;
                        }
                        if let Some((t, first_local)) = best
                            && local > first_local.checked_add(DST_SLACK)?
                        {
                            return Ok(t);
                        }
                        let t = tz.to_ambiguous_timestamp(local).compatible()?;
                        if t > after && best.is_none_or(|(b, _)| t < b) {
                            let first_local = best.map_or(local, |(_, l)| l);
                            best = Some((t, first_local));
                        }
                    }
                }
            } else if let Some((_, first_local)) = best
                && day > first_local.checked_add(DST_SLACK)?.date()
            {
                break;
            }
            day = day.tomorrow()?;
        }
        best.map(|(t, _)| t)
            .ok_or_else(|| WindowError::NeverMatches(self.source.clone()))
    }
}

/// The window's parts, or what is wrong with them: the checks the CRD's rules cannot make
/// (a range that runs backwards, a date that never comes) as well as those they make, for
/// objects admitted before a rule existed and for `render`, which sees no API server.
pub fn check(w: &MaintenanceWindow) -> Result<(Schedule, SignedDuration, TimeZone), WindowError> {
    let schedule = Schedule::parse(&w.schedule)?;
    let duration = parse_duration(&w.duration)?;
    if duration.is_zero() {
        return Err(WindowError::Duration {
            value: w.duration.clone(),
            problem: "a window of length zero is never open",
        });
    }
    let tz = TimeZone::get(&w.time_zone).map_err(|e| WindowError::UnknownTimeZone {
        zone: w.time_zone.clone(),
        message: e.to_string(),
    })?;
    Ok((schedule, duration, tz))
}

/// Whether the window is open at `now`, and when it next closes or opens.
pub fn window_state(w: &MaintenanceWindow, now: Timestamp) -> Result<WindowState, WindowError> {
    let (schedule, duration, tz) = check(w)?;

    // The only occurrences that can cover `now` started in (now - duration, now].
    let first = schedule.next_after(&tz, now.checked_sub(duration)?)?;
    if first > now {
        return Ok(WindowState::Closed { opens_at: first });
    }
    let horizon = now.checked_add(MERGE_HORIZON)?;
    let mut start = first;
    let mut closes_at = first.checked_add(duration)?;
    while closes_at < horizon {
        let next = schedule.next_after(&tz, start)?;
        if next > closes_at {
            break;
        }
        start = next;
        closes_at = closes_at.max(next.checked_add(duration)?);
    }
    Ok(WindowState::Open {
        closes_at: closes_at.min(horizon),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn window(schedule: &str, duration: &str, tz: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            schedule: schedule.to_string(),
            duration: duration.to_string(),
            time_zone: tz.to_string(),
        }
    }

    fn state(schedule: &str, duration: &str, tz: &str, now: &str) -> WindowState {
        window_state(&window(schedule, duration, tz), ts(now)).expect("valid window")
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("2h").ok(),
            Some(SignedDuration::from_hours(2))
        );
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(SignedDuration::from_mins(90))
        );
        assert_eq!(
            parse_duration("90s").ok(),
            Some(SignedDuration::from_secs(90))
        );
        for bad in ["", "2", "h", "2d", "1h 30m", "-1h", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn schedule_syntax() {
        let s = Schedule::parse("*/15 8-18/2 * JAN,jul mon-FRI").expect("valid");
        assert_eq!(bits(s.minutes).collect::<Vec<_>>(), vec![0, 15, 30, 45]);
        assert_eq!(
            bits(s.hours).collect::<Vec<_>>(),
            vec![8, 10, 12, 14, 16, 18]
        );
        assert_eq!(bits(s.months).collect::<Vec<_>>(), vec![1, 7]);
        assert_eq!(
            bits(s.days_of_week).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        let sunday = Schedule::parse("0 0 * * 7").expect("valid");
        assert_eq!(bits(sunday.days_of_week).collect::<Vec<_>>(), vec![0]);
        let tail = Schedule::parse("50/5 * * * 5-7").expect("valid");
        assert_eq!(bits(tail.minutes).collect::<Vec<_>>(), vec![50, 55]);
        assert_eq!(bits(tail.days_of_week).collect::<Vec<_>>(), vec![0, 5, 6]);
        for bad in [
            "0 2 * *",
            "0 2 * * * *",
            "60 2 * * *",
            "0 24 * * *",
            "0 2 0 * *",
            "0 2 * 13 *",
            "0 2 * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "0 2 * FOO *",
            "0 2 ,1 * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn never_matching_schedule_is_an_error_not_a_loop() {
        let w = window("0 0 31 2 *", "1h", "Europe/Berlin");
        let err = window_state(&w, ts("2026-01-01T00:00:00Z")).expect_err("never matches");
        assert!(err.to_string().contains("never matches"), "{err}");
        assert!(Schedule::parse("0 0 30 2 *").is_err());
        // 29 February is rare but real.
        assert_eq!(
            state("0 0 29 2 *", "1h", "UTC", "2026-03-01T00:00:00Z"),
            WindowState::Closed {
                opens_at: ts("2028-02-29T00:00:00Z")
            }
        );
        // 2100 is no leap year: eight years between two 29 Februaries, still within the bound.
        assert_eq!(
            state("0 0 29 2 *", "1h", "UTC", "2096-03-01T00:00:00Z"),
            WindowState::Closed {
                opens_at: ts("2104-02-29T00:00:00Z")
            }
        );
    }

    #[test]
    fn errors_name_the_field_to_change() {
        let e = check(&window("5-1 2 * * *", "1h", "UTC")).expect_err("backwards");
        assert_eq!(
            e.with_field_path(),
            "spec.maintenanceWindow.schedule: schedule field minute (\"5-1\"): range 5-1 runs backwards; write it as 1-5 or as a list"
        );
        let e = check(&window("0 0 31 2 *", "1h", "UTC")).expect_err("31 February");
        assert!(
            e.with_field_path()
                .starts_with("spec.maintenanceWindow.schedule: ")
        );
        let e = check(&window("0 2 * * *", "0m", "UTC")).expect_err("zero");
        assert!(
            e.with_field_path()
                .starts_with("spec.maintenanceWindow.duration: ")
        );
        let e = check(&window("0 2 * * *", "1h", "Europe/Atlantis")).expect_err("zone");
        assert!(
            e.with_field_path()
                .starts_with("spec.maintenanceWindow.timeZone: ")
        );
        check(&window("0 2 * * 6", "2h", "Europe/Berlin")).expect("valid");
    }

    #[test]
    fn unknown_time_zone_is_an_error() {
        let w = window("0 2 * * 6", "2h", "Europe/Atlantis");
        assert!(matches!(
            window_state(&w, ts("2026-01-01T00:00:00Z")),
            Err(WindowError::UnknownTimeZone { .. })
        ));
    }

    #[test]
    fn open_and_closed_in_utc() {
        // Saturdays 02:00-04:00 UTC; 2026-01-03 is a Saturday.
        let closed = state("0 2 * * 6", "2h", "UTC", "2026-01-03T01:59:00Z");
        assert_eq!(
            closed,
            WindowState::Closed {
                opens_at: ts("2026-01-03T02:00:00Z")
            }
        );
        let open = state("0 2 * * 6", "2h", "UTC", "2026-01-03T02:00:00Z");
        assert_eq!(
            open,
            WindowState::Open {
                closes_at: ts("2026-01-03T04:00:00Z")
            }
        );
        // The closing instant itself is outside the window.
        let after = state("0 2 * * 6", "2h", "UTC", "2026-01-03T04:00:00Z");
        assert_eq!(
            after,
            WindowState::Closed {
                opens_at: ts("2026-01-10T02:00:00Z")
            }
        );
    }

    #[test]
    fn window_crossing_midnight() {
        // Fridays 23:00 Berlin (CET = UTC+1 in January) for 3h: open until Saturday 02:00 local.
        let open = state(
            "0 23 * * FRI",
            "3h",
            "Europe/Berlin",
            "2026-01-03T00:30:00Z",
        );
        assert_eq!(
            open,
            WindowState::Open {
                closes_at: ts("2026-01-03T01:00:00Z")
            }
        );
        let closed = state(
            "0 23 * * FRI",
            "3h",
            "Europe/Berlin",
            "2026-01-03T01:00:00Z",
        );
        assert_eq!(
            closed,
            WindowState::Closed {
                opens_at: ts("2026-01-09T22:00:00Z")
            }
        );
    }

    #[test]
    fn berlin_local_time_follows_summer_time() {
        // 02:00 Berlin is 01:00Z in winter and 00:00Z in summer.
        assert_eq!(
            state("0 2 * * *", "1h", "Europe/Berlin", "2026-01-10T12:00:00Z"),
            WindowState::Closed {
                opens_at: ts("2026-01-11T01:00:00Z")
            }
        );
        assert_eq!(
            state("0 2 * * *", "1h", "Europe/Berlin", "2026-07-10T12:00:00Z"),
            WindowState::Closed {
                opens_at: ts("2026-07-11T00:00:00Z")
            }
        );
    }

    #[test]
    fn spring_forward_gap_opens_shifted_not_skipped() {
        // 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST. 02:30 does not exist; the
        // window opens at 03:30 CEST = 01:30Z and lasts one real hour.
        let before = state("30 2 * * *", "1h", "Europe/Berlin", "2026-03-29T00:00:00Z");
        assert_eq!(
            before,
            WindowState::Closed {
                opens_at: ts("2026-03-29T01:30:00Z")
            }
        );
        let open = state("30 2 * * *", "1h", "Europe/Berlin", "2026-03-29T01:45:00Z");
        assert_eq!(
            open,
            WindowState::Open {
                closes_at: ts("2026-03-29T02:30:00Z")
            }
        );
        // The next day 02:30 CEST exists again: 00:30Z.
        let next = state("30 2 * * *", "1h", "Europe/Berlin", "2026-03-29T03:00:00Z");
        assert_eq!(
            next,
            WindowState::Closed {
                opens_at: ts("2026-03-30T00:30:00Z")
            }
        );
        // A 2h window from 01:00 CET spans the gap in elapsed time: it closes at 04:00 CEST.
        let across = state("0 1 * * *", "2h", "Europe/Berlin", "2026-03-29T00:30:00Z");
        assert_eq!(
            across,
            WindowState::Open {
                closes_at: ts("2026-03-29T02:00:00Z")
            }
        );
    }

    #[test]
    fn schedule_at_two_and_three_on_spring_forward_day_keeps_order() {
        // 02:30 shifts to 03:30 CEST, after 03:00 CEST: the earlier instant must win.
        let s = Schedule::parse("0,30 2,3 29 3 *").expect("valid");
        let tz = TimeZone::get("Europe/Berlin").expect("bundled tz");
        let first = s
            .next_after(&tz, ts("2026-03-29T00:00:00Z"))
            .expect("matches");
        // 02:00 (gap) -> 03:00 CEST = 01:00Z; 03:00 CEST = 01:00Z as well.
        assert_eq!(first, ts("2026-03-29T01:00:00Z"));
        let second = s.next_after(&tz, first).expect("matches");
        assert_eq!(second, ts("2026-03-29T01:30:00Z"));
    }

    #[test]
    fn fall_back_fold_opens_once_at_the_first_occurrence() {
        // 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET; 02:30 happens twice
        // (00:30Z and 01:30Z). The window opens at the first, once.
        let before = state("30 2 * * *", "30m", "Europe/Berlin", "2026-10-25T00:00:00Z");
        assert_eq!(
            before,
            WindowState::Closed {
                opens_at: ts("2026-10-25T00:30:00Z")
            }
        );
        let between = state("30 2 * * *", "30m", "Europe/Berlin", "2026-10-25T01:10:00Z");
        assert_eq!(
            between,
            WindowState::Closed {
                opens_at: ts("2026-10-26T01:30:00Z")
            }
        );
        // A 2h window from 01:00 CEST lasts two real hours, ending at 02:00 CET.
        let across = state("0 1 * * *", "2h", "Europe/Berlin", "2026-10-24T23:30:00Z");
        assert_eq!(
            across,
            WindowState::Open {
                closes_at: ts("2026-10-25T01:00:00Z")
            }
        );
    }

    #[test]
    fn overlapping_occurrences_merge() {
        // Every hour for 90 minutes: always open; the end is reported at the merge horizon.
        let now = ts("2026-01-01T10:10:00Z");
        let s = state("0 * * * *", "90m", "UTC", "2026-01-01T10:10:00Z");
        assert_eq!(
            s,
            WindowState::Open {
                closes_at: now.checked_add(MERGE_HORIZON).expect("in range")
            }
        );
        // 02:00 and 03:00 for 1h touch: one window 02:00-04:00.
        assert_eq!(
            state("0 2,3 * * *", "1h", "UTC", "2026-01-01T02:30:00Z"),
            WindowState::Open {
                closes_at: ts("2026-01-01T04:00:00Z")
            }
        );
    }

    #[test]
    fn either_day_rule_when_both_restricted() {
        // 1st of the month OR Monday. 2026-06-01 is a Monday, 2026-06-08 the next Monday,
        // 2026-07-01 a Wednesday.
        let s = Schedule::parse("0 3 1 * MON").expect("valid");
        let d = |y, m, d| jiff::civil::date(y, m, d);
        assert!(s.matches_day(d(2026, 6, 8)));
        assert!(s.matches_day(d(2026, 7, 1)));
        assert!(!s.matches_day(d(2026, 6, 9)));
        // With a starred day-of-month both must hold: `*/2` days that are Mondays.
        let both = Schedule::parse("0 3 */2 * MON").expect("valid");
        assert!(!both.matches_day(d(2026, 6, 8)));
        assert!(both.matches_day(d(2026, 6, 1)));
    }
}
