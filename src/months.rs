//! Calendar months in the configured time zone, and the comparisons the
//! national monitoring center publishes: a month against the previous one,
//! against the same month a year before, and the year to date against the
//! same period of the previous year.
//!
//! Months are local: an incident at 23:30 on 31 October in Hanoi belongs to
//! October even though it is 1 November in UTC. Every window is half-open,
//! `[start, end)`, so consecutive months never share an instant.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// A calendar month, `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i16,
    /// 1 to 12.
    pub month: i8,
}

/// A half-open span of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Month {
    pub fn new(year: i16, month: i8) -> Option<Month> {
        ((1..=12).contains(&month) && (1..=9998).contains(&year)).then_some(Month { year, month })
    }

    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Month, String> {
        let bad = || format!("bad month {text:?}: expected YYYY-MM, e.g. 2020-10");
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i16 = y.parse().map_err(|_| bad())?;
        let month: i8 = m.parse().map_err(|_| bad())?;
        Month::new(year, month).ok_or_else(bad)
    }

    /// The month `t` falls in, in `tz`.
    pub fn containing(t: Timestamp, tz: &TimeZone) -> Month {
        let dt = tz.to_datetime(t);
        Month {
            year: dt.year(),
            month: dt.month(),
        }
    }

    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn year_before(self) -> Month {
        Month {
            year: self.year - 1,
            month: self.month,
        }
    }

    /// The first instant of the month in `tz` (local midnight of the 1st,
    /// or the first instant after it when a DST gap swallows midnight).
    pub fn start(self, tz: &TimeZone) -> Timestamp {
        // Month::new validated the date; MIN is unreachable.
        first_instant(Date::new(self.year, self.month, 1).unwrap_or(Date::MIN), tz)
    }

    pub fn window(self, tz: &TimeZone) -> Window {
        Window {
            start: self.start(tz),
            end: self.next().start(tz),
        }
    }

    /// January 1 of the month's year through the end of the month.
    pub fn year_to_date(self, tz: &TimeZone) -> Window {
        Window {
            start: Month {
                year: self.year,
                month: 1,
            }
            .start(tz),
            end: self.next().start(tz),
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

fn first_instant(date: Date, tz: &TimeZone) -> Timestamp {
    date.to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MIN)
}

/// The windows of the live figures at `now`: this month so far, the whole
/// previous month, the whole same month last year, the year to date, the
/// same period of last year (January 1 to the same local date and time),
/// and last month and the same month last year to the same day and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveWindows {
    pub month: Month,
    pub this_month: Window,
    pub last_month: Window,
    pub same_month_last_year: Window,
    pub year_to_date: Window,
    pub same_period_last_year: Window,
    /// Last month and the same month last year to the same local day and
    /// time ([`same_days_before`]): what a month in progress compares with.
    pub last_month_to_date: Window,
    pub same_month_last_year_to_date: Window,
}

impl LiveWindows {
    pub fn at(now: Timestamp, tz: &TimeZone) -> LiveWindows {
        let month = Month::containing(now, tz);
        let zoned = now.to_zoned(tz.clone());
        // 29 February goes to 28 February a year before.
        let year_ago = zoned
            .checked_sub(1.year())
            .map(|z: Zoned| z.timestamp())
            .unwrap_or(Timestamp::MIN);
        let jan = |year: i16| Month { year, month: 1 }.start(tz);
        LiveWindows {
            month,
            this_month: Window {
                start: month.start(tz),
                end: now,
            },
            last_month: month.previous().window(tz),
            same_month_last_year: month.year_before().window(tz),
            year_to_date: Window {
                start: jan(month.year),
                end: now,
            },
            same_period_last_year: Window {
                start: jan(month.year - 1),
                end: year_ago,
            },
            last_month_to_date: same_days_before(now, tz, 1),
            same_month_last_year_to_date: same_days_before(now, tz, 12),
        }
    }
}

/// For a month in progress at `now`: from the start of the month `back`
/// months before to the same local day and time in it (4 December 22:16 →
/// 1 November 00:00 to 4 November 22:16), so the days compared are the
/// days elapsed. Where that month has no such day (31 March against
/// February) the whole of it.
pub fn same_days_before(now: Timestamp, tz: &TimeZone, back: i32) -> Window {
    let zoned = now.to_zoned(tz.clone());
    let mut base = Month::containing(now, tz);
    for _ in 0..back {
        base = base.previous();
    }
    let whole = base.window(tz);
    match zoned.checked_sub(back.months()) {
        Ok(then) if then.day() == zoned.day() => Window {
            start: whole.start,
            end: then.timestamp().clamp(whole.start, whole.end),
        },
        _ => whole,
    }
}

/// `current / base - 1`, or `None` when the base is zero (a change from
/// nothing is "new", not a number).
pub fn change(current: u64, base: u64) -> Option<f64> {
    (base != 0).then(|| current as f64 / base as f64 - 1.0)
}

/// A change as a bulletin prints it: hundredths of a percent, rounded half
/// away from zero on the exact ratio (33 against 32 is +3.125%, printed
/// +3.13%; in binary floating point it is a hair below and would print
/// +3.12%). `None` when the base is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percent {
    pub negative: bool,
    /// |current − base| × 10,000 / base, rounded.
    pub hundredths: u128,
}

impl Percent {
    pub fn of(current: u64, base: u64) -> Option<Percent> {
        if base == 0 {
            return None;
        }
        let (c, b) = (u128::from(current), u128::from(base));
        let scaled = c.abs_diff(b) * 10_000;
        let (q, r) = (scaled / b, scaled % b);
        // Half away from zero: a remainder of half the base or more rounds
        // the magnitude up, whichever the sign.
        let hundredths = if 2 * r >= b { q + 1 } else { q };
        Some(Percent {
            negative: current < base && hundredths > 0,
            hundredths,
        })
    }

    pub fn is_zero(self) -> bool {
        self.hundredths == 0
    }

    /// The magnitude's whole part and its two decimals: ("1234", "50").
    pub fn digits(self) -> (String, String) {
        (
            (self.hundredths / 100).to_string(),
            format!("{:02}", self.hundredths % 100),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hcm() -> TimeZone {
        TimeZone::get("Asia/Ho_Chi_Minh").expect("zone")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    /// The year and month that hold `t` in `tz`.
    fn month_at(t: Timestamp, tz: &TimeZone) -> (i16, i8) {
        let m = Month::containing(t, tz);
        (m.year, m.month)
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(
            Month::parse("2020-10"),
            Ok(Month {
                year: 2020,
                month: 10
            })
        );
        assert_eq!(
            Month::parse("2020-10").map(|m| m.to_string()),
            Ok("2020-10".into())
        );
        for bad in [
            "2020-13",
            "2020-00",
            "2020-1",
            "20-10",
            "2020/10",
            "",
            "2020-10-01",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn month_arithmetic_wraps_years() {
        let jan = Month::new(2021, 1).expect("month");
        assert_eq!(jan.previous(), Month::new(2020, 12).expect("month"));
        assert_eq!(jan.previous().next(), jan);
        assert_eq!(jan.year_before(), Month::new(2020, 1).expect("month"));
    }

    #[test]
    fn months_are_local_in_ho_chi_minh_city() {
        let tz = hcm();
        let oct = Month::new(2020, 10).expect("month").window(&tz);
        // Local midnight is 17:00 UTC the day before.
        assert_eq!(oct.start, ts("2020-09-30T17:00:00Z"));
        assert_eq!(oct.end, ts("2020-10-31T17:00:00Z"));
        let late = ts("2020-10-31T23:30:00+07:00");
        assert_eq!(month_at(late, &tz), (2020, 10));
        assert!(late >= oct.start && late < oct.end);
        // 00:30 local on 1 November is still 31 October in UTC: November here.
        let early = ts("2020-11-01T00:30:00+07:00");
        assert_eq!(month_at(early, &tz), (2020, 11));
        assert_eq!(month_at(early, &TimeZone::UTC), (2020, 10));
        assert!(early >= oct.end);
        // West of UTC the other way round: 23:30 on 31 October in New York
        // is 1 November in UTC, and October there.
        let ny = TimeZone::get("America/New_York").expect("zone");
        let late_ny = ts("2020-10-31T23:30:00-04:00");
        assert_eq!(month_at(late_ny, &ny), (2020, 10));
        assert_eq!(month_at(late_ny, &TimeZone::UTC), (2020, 11));
        // Half-open: the first instant of November is not October.
        assert_eq!(month_at(oct.end, &tz), (2020, 11));
    }

    #[test]
    fn live_windows() {
        let tz = hcm();
        let now = ts("2020-10-15T12:00:00+07:00");
        let w = LiveWindows::at(now, &tz);
        assert_eq!(w.month, Month::new(2020, 10).expect("month"));
        assert_eq!(w.this_month.start, ts("2020-10-01T00:00:00+07:00"));
        assert_eq!(w.this_month.end, now);
        assert_eq!(w.last_month.start, ts("2020-09-01T00:00:00+07:00"));
        assert_eq!(w.last_month.end, ts("2020-10-01T00:00:00+07:00"));
        assert_eq!(
            w.same_month_last_year.start,
            ts("2019-10-01T00:00:00+07:00")
        );
        assert_eq!(w.same_month_last_year.end, ts("2019-11-01T00:00:00+07:00"));
        assert_eq!(w.year_to_date.start, ts("2020-01-01T00:00:00+07:00"));
        assert_eq!(
            w.same_period_last_year.start,
            ts("2019-01-01T00:00:00+07:00")
        );
        assert_eq!(w.same_period_last_year.end, ts("2019-10-15T12:00:00+07:00"));
        assert_eq!(w.last_month_to_date.start, ts("2020-09-01T00:00:00+07:00"));
        assert_eq!(w.last_month_to_date.end, ts("2020-09-15T12:00:00+07:00"));
        assert_eq!(
            w.same_month_last_year_to_date.end,
            ts("2019-10-15T12:00:00+07:00")
        );
        // January: last month is December of the year before.
        let w = LiveWindows::at(ts("2021-01-05T00:00:00+07:00"), &tz);
        assert_eq!(w.last_month.start, ts("2020-12-01T00:00:00+07:00"));
        // A leap day's year-ago is 28 February.
        let w = LiveWindows::at(ts("2020-02-29T10:00:00+07:00"), &tz);
        assert_eq!(w.same_period_last_year.end, ts("2019-02-28T10:00:00+07:00"));
    }

    #[test]
    fn same_days_of_an_earlier_month() {
        let tz = hcm();
        let w = same_days_before(ts("2026-12-04T22:16:00+07:00"), &tz, 1);
        assert_eq!(w.start, ts("2026-11-01T00:00:00+07:00"));
        assert_eq!(w.end, ts("2026-11-04T22:16:00+07:00"));
        let w = same_days_before(ts("2026-12-04T22:16:00+07:00"), &tz, 12);
        assert_eq!(w.start, ts("2025-12-01T00:00:00+07:00"));
        assert_eq!(w.end, ts("2025-12-04T22:16:00+07:00"));
        // January against December of the year before.
        let w = same_days_before(ts("2027-01-10T08:00:00+07:00"), &tz, 1);
        assert_eq!(w.start, ts("2026-12-01T00:00:00+07:00"));
        assert_eq!(w.end, ts("2026-12-10T08:00:00+07:00"));
        // 31 March: February has no 31st, so all of it.
        let w = same_days_before(ts("2026-03-31T10:00:00+07:00"), &tz, 1);
        assert_eq!(w.start, ts("2026-02-01T00:00:00+07:00"));
        assert_eq!(w.end, ts("2026-03-01T00:00:00+07:00"));
        // 29 February against a February of 28 days: all of it.
        let w = same_days_before(ts("2024-02-29T10:00:00+07:00"), &tz, 12);
        assert_eq!(w.end, ts("2023-03-01T00:00:00+07:00"));
    }

    #[test]
    fn dst_zone_month_starts_at_local_midnight() {
        let tz = TimeZone::get("Europe/Berlin").expect("zone");
        assert_eq!(
            Month::new(2021, 4).expect("month").start(&tz),
            ts("2021-04-01T00:00:00+02:00")
        );
        assert_eq!(
            Month::new(2021, 11).expect("month").start(&tz),
            ts("2021-11-01T00:00:00+01:00")
        );
    }

    #[test]
    fn changes_as_the_bulletins_print_them() {
        // October 2020: 582 against 524 in September and 580 in October 2019.
        let mom = change(582, 524).expect("base");
        let yoy = change(582, 580).expect("base");
        assert_eq!(format!("{:.2}", mom * 100.0), "11.07");
        assert_eq!(format!("{:.2}", yoy * 100.0), "0.34");
        assert_eq!(
            format!("{:.2}", change(4161, 4514).expect("base") * 100.0),
            "-7.82"
        );
        assert_eq!(change(3, 0), None);
    }

    #[test]
    fn percents_round_half_away_from_zero_on_the_exact_ratio() {
        let p = |c, b| Percent::of(c, b).map(|p| (p.negative, p.hundredths));
        // +3.125% and +0.125%: ties, up in magnitude.
        assert_eq!(p(33, 32), Some((false, 313)));
        assert_eq!(p(801, 800), Some((false, 13)));
        // −3.125% and −0.125%: ties, up in magnitude too.
        assert_eq!(p(31, 32), Some((true, 313)));
        assert_eq!(p(799, 800), Some((true, 13)));
        // The bulletin's own figures.
        assert_eq!(p(582, 524), Some((false, 1107)));
        assert_eq!(p(582, 580), Some((false, 34)));
        assert_eq!(p(4161, 4514), Some((true, 782)));
        // Below half a hundredth: zero, and never "−0.00".
        assert_eq!(p(10_001, 10_000), Some((false, 1)));
        assert_eq!(p(100_001, 100_000), Some((false, 0)));
        assert_eq!(p(1_000_000, 1_000_001), Some((false, 0)));
        assert_eq!(p(0, 5), Some((true, 10_000)));
        assert_eq!(p(5, 5), Some((false, 0)));
        assert_eq!(p(5, 0), None);
        assert_eq!(
            p(u64::MAX, 1).map(|(_, h)| h),
            Some((u128::from(u64::MAX) - 1) * 10_000)
        );
        assert_eq!(
            Percent::of(12_345, 1_000).map(Percent::digits),
            Some(("1134".into(), "50".into()))
        );
    }
}
