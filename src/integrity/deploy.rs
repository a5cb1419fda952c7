//! When changes to a web root are expected: deploy windows (weekly, in the
//! configured time zone) and a deploy marker file.
//!
//! Whether a change happened during a deploy is decided when canhgac sees
//! it (the notification or the re-scan that found it), never from the
//! file's modification time: whoever can write the file can set that.

use std::path::PathBuf;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A weekly window, e.g. `Sat 22:00-02:00` (crossing midnight: it starts on
/// Saturday and ends on Sunday) or `Mon-Fri 12:00-12:30`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployWindow {
    /// Days on which the window starts, Monday first.
    days: [bool; 7],
    /// Minutes after local midnight.
    start: u16,
    end: u16,
    text: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl DeployWindow {
    /// `[DAYS ]HH:MM-HH:MM`, DAYS being `daily` or a comma list of days and
    /// ranges (`Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri`); without DAYS, daily.
    pub fn parse(text: &str) -> Result<DeployWindow, String> {
        let bad = |why: &str| {
            format!("deploy window {text:?}: {why} (expected e.g. \"Sat 22:00-02:00\", \"Mon-Fri 12:00-12:30\" or \"daily 01:00-02:00\")")
        };
        let mut parts = text.split_whitespace();
        let (days_text, times) = match (parts.next(), parts.next(), parts.next()) {
            (Some(times), None, None) => ("daily", times),
            (Some(days), Some(times), None) => (days, times),
            _ => return Err(bad("one day list and one time range")),
        };
        let mut days = [false; 7];
        if days_text.eq_ignore_ascii_case("daily") || days_text == "*" {
            days = [true; 7];
        } else {
            for item in days_text.split(',') {
                let (from, to) = item.split_once('-').unwrap_or((item, item));
                let from = day_index(from).ok_or_else(|| bad(&format!("unknown day {from:?}")))?;
                let to = day_index(to).ok_or_else(|| bad(&format!("unknown day {to:?}")))?;
                let mut d = from;
                loop {
                    days[d] = true;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
        }
        let (start, end) = times.split_once('-').ok_or_else(|| bad("no time range"))?;
        let start = minutes(start).ok_or_else(|| bad(&format!("bad time {start:?}")))?;
        let end = minutes(end).ok_or_else(|| bad(&format!("bad time {end:?}")))?;
        if start == end {
            return Err(bad("the window is empty"));
        }
        Ok(DeployWindow {
            days,
            start,
            end,
            text: text.to_owned(),
        })
    }

    /// Whether `now`, read in `tz`, falls inside the window.
    pub fn contains(&self, now: Timestamp, tz: &TimeZone) -> bool {
        let local = now.to_zoned(tz.clone());
        let day = weekday_index(local.weekday());
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            // Crosses midnight: the evening part belongs to today's window,
            // the morning part to yesterday's.
            (self.days[day] && minute >= self.start)
                || (self.days[(day + 6) % 7] && minute < self.end)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn day_index(name: &str) -> Option<usize> {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let name = name.trim().to_ascii_lowercase();
    (0..7).find(|&i| name == DAY_NAMES[i] || name == FULL[i])
}

fn weekday_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

fn minutes(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    // 24:00 closes a window at midnight.
    if (h < 24 && m < 60) || (h == 24 && m == 0) {
        Some(h * 60 + m)
    } else {
        None
    }
}

/// Everything that says a deploy is under way for one web root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deploy {
    pub windows: Vec<DeployWindow>,
    /// While this path exists (any kind of file), changes are expected.
    pub marker: Option<PathBuf>,
}

impl Deploy {
    /// Whether a change seen at `now` is part of a deploy. One `lstat` for
    /// the marker.
    pub fn active(&self, now: Timestamp, tz: &TimeZone) -> bool {
        self.marker
            .as_ref()
            .is_some_and(|m| std::fs::symlink_metadata(m).is_ok())
            || self.windows.iter().any(|w| w.contains(now, tz))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(local: &str) -> Timestamp {
        // 2026-11-21 is a Saturday.
        format!("{local}[Asia/Ho_Chi_Minh]")
            .parse::<jiff::Zoned>()
            .expect("zoned")
            .timestamp()
    }

    fn tz() -> TimeZone {
        TimeZone::get("Asia/Ho_Chi_Minh").expect("tz")
    }

    #[test]
    fn windows_cross_midnight_and_honour_days() {
        let w = DeployWindow::parse("Sat 22:00-02:00").expect("valid");
        assert!(!w.contains(at("2026-11-21T21:59"), &tz()));
        assert!(w.contains(at("2026-11-21T22:00"), &tz()));
        assert!(w.contains(at("2026-11-22T01:59"), &tz()), "Sunday morning");
        assert!(!w.contains(at("2026-11-22T02:00"), &tz()));
        assert!(!w.contains(at("2026-11-22T22:30"), &tz()), "Sunday evening");
        assert!(
            !w.contains(at("2026-11-21T01:00"), &tz()),
            "Saturday morning"
        );

        let w = DeployWindow::parse("Mon-Fri 12:00-12:30").expect("valid");
        assert!(w.contains(at("2026-11-23T12:10"), &tz()), "Monday");
        assert!(!w.contains(at("2026-11-21T12:10"), &tz()), "Saturday");
        let w = DeployWindow::parse("Fri-Mon 00:00-24:00").expect("wrapping day range");
        assert!(w.contains(at("2026-11-22T15:00"), &tz()));
        assert!(!w.contains(at("2026-11-25T15:00"), &tz()), "Wednesday");
        let w = DeployWindow::parse("01:00-02:00").expect("daily");
        assert!(w.contains(at("2026-11-25T01:30"), &tz()));
        assert!(DeployWindow::parse("Saturday,sun 01:00-02:00").is_ok());
    }

    #[test]
    fn bad_windows_say_why() {
        for (text, why) in [
            ("Sat", "no time range"),
            ("Funday 01:00-02:00", "unknown day"),
            ("Sat 25:00-02:00", "bad time"),
            ("Sat 1:5-02:00", "bad time"),
            ("Sat 02:00-02:00", "empty"),
            ("Sat 01:00-02:00 extra", "one day list"),
            ("Monkey 01:00-02:00", "unknown day"),
        ] {
            let e = DeployWindow::parse(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn marker_file_makes_a_deploy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join(".deploying");
        let d = Deploy {
            windows: Vec::new(),
            marker: Some(marker.clone()),
        };
        assert!(!d.active(Timestamp::now(), &tz()));
        std::fs::write(&marker, b"").expect("touch");
        assert!(d.active(Timestamp::now(), &tz()));
    }
}
