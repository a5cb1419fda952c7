//! The fields of a journal entry that its line is made of.

/// The fields a line is made of, besides its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Hostname,
    Identifier,
    Comm,
    SyslogPid,
    Pid,
    Message,
}

const FIELDS: usize = 6;

impl Field {
    fn from_name(name: &[u8]) -> Option<Field> {
        Some(match name {
            b"_HOSTNAME" => Field::Hostname,
            b"SYSLOG_IDENTIFIER" => Field::Identifier,
            b"_COMM" => Field::Comm,
            b"SYSLOG_PID" => Field::SyslogPid,
            b"_PID" => Field::Pid,
            b"MESSAGE" => Field::Message,
            _ => return None,
        })
    }
}

/// One entry; reused from entry to entry so reading allocates nothing once
/// warm. Only the fields of the line are kept, and each only up to a cap
/// past the line limit, so a hostile multi-megabyte field costs reading,
/// never memory.
#[derive(Default)]
pub struct Entry {
    /// `__REALTIME_TIMESTAMP`: microseconds since the epoch.
    pub realtime: Option<u64>,
    values: [Vec<u8>; FIELDS],
    seen: [bool; FIELDS],
}

impl Entry {
    /// The field's first value, if the entry had it (possibly cut to the
    /// cap).
    pub fn get(&self, field: Field) -> Option<&[u8]> {
        let i = field as usize;
        self.seen[i].then(|| self.values[i].as_slice())
    }

    pub fn clear(&mut self) {
        self.realtime = None;
        self.seen = [false; FIELDS];
        for v in &mut self.values {
            v.clear();
        }
    }

    /// Takes in one `FIELD=value` as the journal stores it. A field may
    /// appear more than once: like `journalctl -o json`'s first array
    /// element, the first value counts.
    pub fn add(&mut self, data: &[u8], cap: usize) {
        let Some(eq) = memchr::memchr(b'=', data) else {
            return;
        };
        let Some(f) = Field::from_name(&data[..eq]) else {
            return;
        };
        let i = f as usize;
        if !self.seen[i] {
            self.seen[i] = true;
            let value = &data[eq + 1..];
            self.values[i].extend_from_slice(&value[..value.len().min(cap)]);
        }
    }

    #[cfg(test)]
    pub fn with(realtime: u64, fields: &[(Field, &[u8])]) -> Entry {
        let mut e = Entry {
            realtime: Some(realtime),
            ..Entry::default()
        };
        for (f, v) in fields {
            e.seen[*f as usize] = true;
            e.values[*f as usize] = v.to_vec();
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_unknown_fields_are_skipped_values_are_capped() {
        let mut e = Entry::default();
        for d in [
            &b"_HOSTNAME=web01"[..],
            b"MESSAGE=bin\xff\nary",
            b"MESSAGE=second",
            b"_BOOT_ID=x",
            b"NOT A FIELD",
            b"_PID=1234567",
        ] {
            e.add(d, 5);
        }
        assert_eq!(e.get(Field::Hostname), Some(&b"web01"[..]));
        assert_eq!(e.get(Field::Message), Some(&b"bin\xff\n"[..]));
        assert_eq!(e.get(Field::Pid), Some(&b"12345"[..]));
        assert_eq!(e.get(Field::Comm), None);
        e.clear();
        assert_eq!(e.get(Field::Hostname), None);
        // An empty value is there, and empty.
        e.add(b"_COMM=", 5);
        assert_eq!(e.get(Field::Comm), Some(&b""[..]));
    }
}
