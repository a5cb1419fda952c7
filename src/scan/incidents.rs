//! The incidents of a `scan`, kept for printing oldest first: in memory,
//! or past [`SPILL_BYTES`] as sorted runs in unnamed temporary files that
//! printing merges, so that a scan's memory does not grow with how many
//! lines match.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::ser::{SerializeSeq, Serializer as _};

use crate::detect::Incident;
use crate::output::{IncidentView, Table};
use crate::rules::RuleSet;

/// Bytes of incidents (estimated) held in memory before they are written
/// to a temporary file.
const SPILL_BYTES: usize = 16 << 20;

/// The incidents of a scan, for printing oldest first once it is done.
///
/// A flood of attacks from many addresses closes an incident per address
/// and rule (1,000,000 web attack lines from 20,000 addresses: 490,000
/// incidents), and holding them all made a scan's memory grow with the
/// lines it matched (854 MB there). Past [`SPILL_BYTES`] they are sorted
/// and written as a run to a temporary file (deleted at once, so nothing
/// is left behind); printing merges the runs. If no file can be written,
/// they stay in memory.
pub struct Incidents {
    keep: bool,
    /// [`SPILL_BYTES`] (smaller in tests).
    limit: usize,
    buf: Vec<Incident>,
    bytes: usize,
    /// Sorted runs, oldest first.
    runs: Vec<File>,
    spill_failed: bool,
    count: usize,
}

/// The order incidents are printed in (then the order they closed in).
fn oldest_first(a: &Incident, b: &Incident) -> Ordering {
    (a.first_seen, a.rule, &a.key).cmp(&(b.first_seen, b.rule, &b.key))
}

impl Incidents {
    pub(super) fn new(keep: bool) -> Self {
        Incidents {
            keep,
            limit: SPILL_BYTES,
            buf: Vec::new(),
            bytes: 0,
            runs: Vec::new(),
            spill_failed: false,
            count: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn add(&mut self, closed: Vec<Incident>) {
        self.count += closed.len();
        if !self.keep {
            return;
        }
        for inc in closed {
            self.bytes += 200
                + inc.sample.len()
                + inc.key.len()
                + inc
                    .fields
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 48)
                    .sum::<usize>();
            self.buf.push(inc);
        }
        if self.bytes > self.limit && !self.spill_failed {
            self.buf.sort_by(oldest_first);
            match self.spill() {
                Ok(run) => {
                    self.runs.push(run);
                    self.buf.clear();
                    self.bytes = 0;
                }
                Err(_) => self.spill_failed = true,
            }
        }
    }

    /// `buf` (sorted) written to a new temporary file.
    fn spill(&self) -> io::Result<File> {
        let dir = std::env::temp_dir();
        let mut file = None;
        for attempt in 0..100u32 {
            let path = dir.join(format!(
                "canhgac-scan-{}-{}-{attempt}.tmp",
                std::process::id(),
                self.runs.len()
            ));
            match File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    // Unnamed from now on: gone when closed, even on a crash.
                    std::fs::remove_file(&path)?;
                    file = Some(f);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        let mut file = file.ok_or_else(|| io::Error::other("no free temporary file name"))?;
        let mut out = BufWriter::new(&mut file);
        for inc in &self.buf {
            encode(&mut out, inc)?;
        }
        out.flush()?;
        drop(out);
        Ok(file)
    }

    /// Calls `each` with every incident: oldest first (by first seen, rule
    /// and key, then in the order they closed) if `sorted`, else in any
    /// order.
    fn visit(
        &mut self,
        sorted: bool,
        each: &mut dyn FnMut(&Incident) -> io::Result<()>,
    ) -> io::Result<()> {
        self.buf.sort_by(oldest_first);
        let mut readers = Vec::with_capacity(self.runs.len());
        for run in &mut self.runs {
            run.rewind()?;
            readers.push(RunReader {
                input: BufReader::new(&*run),
            });
        }
        if !sorted {
            for reader in &mut readers {
                while let Some(inc) = reader.next()? {
                    each(&inc)?;
                }
            }
            return self.buf.iter().try_for_each(&mut *each);
        }
        // The memory's incidents are the newest source: they come after
        // equal ones of the runs, as they closed after them.
        let mut heads: Vec<Option<Incident>> = Vec::with_capacity(readers.len());
        for reader in &mut readers {
            heads.push(reader.next()?);
        }
        let mut in_memory = self.buf.iter().peekable();
        let mut heap = BinaryHeap::new();
        for (source, head) in heads.iter().enumerate() {
            if let Some(inc) = head {
                heap.push(Reverse((
                    (inc.first_seen, inc.rule, inc.key.clone()),
                    source,
                )));
            }
        }
        loop {
            let from_run = heap.peek().map(|Reverse((key, _))| key.clone());
            let memory_first = match (in_memory.peek(), &from_run) {
                (Some(m), Some(key)) => (m.first_seen, m.rule, &m.key) < (key.0, key.1, &key.2),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if memory_first {
                if let Some(inc) = in_memory.next() {
                    each(inc)?;
                }
                continue;
            }
            let Some(Reverse((_, source))) = heap.pop() else {
                return Ok(());
            };
            let (Some(head), Some(reader)) = (heads.get_mut(source), readers.get_mut(source))
            else {
                return Ok(());
            };
            if let Some(inc) = head.take() {
                each(&inc)?;
            }
            *head = reader.next()?;
            if let Some(inc) = head {
                heap.push(Reverse((
                    (inc.first_seen, inc.rule, inc.key.clone()),
                    source,
                )));
            }
        }
    }

    /// The incidents as `scan` prints them: an aligned table, oldest first.
    pub fn write_table(
        &mut self,
        out: &mut dyn Write,
        rules: &RuleSet,
        tz: &TimeZone,
    ) -> io::Result<()> {
        let mut table = Table::new(tz);
        self.visit(false, &mut |inc| {
            table.fit(&table.row(&IncidentView::detected(rules, inc)));
            Ok(())
        })?;
        table.write_header(out)?;
        self.visit(true, &mut |inc| {
            table.write_row(out, &table.row(&IncidentView::detected(rules, inc)))
        })
    }

    /// The incidents as a JSON array, oldest first (what
    /// [`crate::output::write_json`] writes of them all).
    pub fn write_json(&mut self, out: &mut dyn Write, rules: &RuleSet) -> io::Result<()> {
        {
            let mut ser = serde_json::Serializer::pretty(&mut *out);
            let mut seq = ser.serialize_seq(None)?;
            self.visit(true, &mut |inc| {
                seq.serialize_element(&IncidentView::detected(rules, inc))
                    .map_err(io::Error::from)
            })?;
            seq.end()?;
        }
        writeln!(out)
    }
}

/// Incidents read back from a run.
struct RunReader<'f> {
    input: BufReader<&'f File>,
}

impl RunReader<'_> {
    fn next(&mut self) -> io::Result<Option<Incident>> {
        if self.input.fill_buf()?.is_empty() {
            return Ok(None);
        }
        decode(&mut self.input).map(Some)
    }
}

// A run's own format: lengths and bytes, no escaping (JSON spent more
// time escaping the tabs of a long sample than the scan took to find it).

fn encode(out: &mut impl Write, inc: &Incident) -> io::Result<()> {
    let text = |out: &mut dyn Write, s: &str| -> io::Result<()> {
        out.write_all(&(s.len() as u64).to_le_bytes())?;
        out.write_all(s.as_bytes())
    };
    for n in [inc.id, inc.rule as u64, inc.events, inc.fields.len() as u64] {
        out.write_all(&n.to_le_bytes())?;
    }
    for t in [inc.first_seen, inc.last_seen] {
        out.write_all(&t.as_second().to_le_bytes())?;
        out.write_all(&t.subsec_nanosecond().to_le_bytes())?;
    }
    text(out, &inc.key)?;
    text(out, &inc.sample)?;
    for (k, v) in &inc.fields {
        text(out, k)?;
        text(out, v)?;
    }
    Ok(())
}

fn decode(input: &mut impl Read) -> io::Result<Incident> {
    fn bytes<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
        let mut b = [0; N];
        input.read_exact(&mut b)?;
        Ok(b)
    }
    let word = |input: &mut dyn Read| -> io::Result<u64> {
        Ok(u64::from_le_bytes(bytes(&mut &mut *input)?))
    };
    let number = |input: &mut dyn Read| -> io::Result<usize> {
        usize::try_from(word(input)?).map_err(|_| io::Error::other("corrupt run"))
    };
    let text = |input: &mut dyn Read| -> io::Result<String> {
        let len = number(input)?;
        // The file is ours; this only keeps a damaged one from asking for
        // all the memory there is.
        if len > 1 << 30 {
            return Err(io::Error::other("corrupt run"));
        }
        let mut b = vec![0; len];
        input.read_exact(&mut b)?;
        String::from_utf8(b).map_err(|_| io::Error::other("corrupt run"))
    };
    let time = |input: &mut dyn Read| -> io::Result<Timestamp> {
        let second = i64::from_le_bytes(bytes(&mut &mut *input)?);
        let nanosecond = i32::from_le_bytes(bytes(&mut &mut *input)?);
        Timestamp::new(second, nanosecond).map_err(|_| io::Error::other("corrupt run"))
    };
    let id = word(input)?;
    let rule = number(input)?;
    let events = word(input)?;
    let fields = number(input)?;
    let first_seen = time(input)?;
    let last_seen = time(input)?;
    let key = text(input)?;
    let sample = text(input)?;
    let fields = (0..fields)
        .map(|_| Ok((text(input)?, text(input)?)))
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Incident {
        id,
        rule,
        key,
        first_seen,
        last_seen,
        events,
        sample,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output;

    #[test]
    fn spilled_incidents_print_as_kept_ones() {
        let rules = RuleSet::shipped();
        let t0: Timestamp = "2026-11-01T00:00:00Z".parse().expect("time");
        // Few distinct (time, rule, key) so that ties are common: they
        // must keep the order incidents closed in, across runs.
        let incident = |i: u64| Incident {
            id: i,
            rule: (i % 3) as usize,
            key: format!("198.51.100.{}", i % 5),
            first_seen: t0 + jiff::SignedDuration::from_secs((i * 7 % 11) as i64),
            last_seen: t0 + jiff::SignedDuration::from_secs(100),
            events: i,
            sample: format!("line {i} \u{1b}[31m"),
            fields: vec![("src_ip".into(), format!("198.51.100.{}", i % 5))],
        };
        let all: Vec<Incident> = (0..500).map(incident).collect();
        let mut kept = Incidents::new(true);
        let mut spilled = Incidents::new(true);
        spilled.limit = 2000;
        for batch in all.chunks(7) {
            kept.add(batch.to_vec());
            spilled.add(batch.to_vec());
        }
        assert!(kept.runs.is_empty());
        assert!(spilled.runs.len() > 10, "{} runs", spilled.runs.len());
        assert_eq!(spilled.len(), 500);

        let mut sorted = all.clone();
        sorted.sort_by(oldest_first);
        let views: Vec<IncidentView> = sorted
            .iter()
            .map(|i| IncidentView::detected(&rules, i))
            .collect();
        let tz = TimeZone::UTC;
        let (mut want, mut got) = (Vec::new(), Vec::new());
        output::write_table(&mut want, &views, &tz).expect("write");
        spilled.write_table(&mut got, &rules, &tz).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        let (mut want, mut got) = (Vec::new(), Vec::new());
        output::write_json(&mut want, &views).expect("write");
        spilled.write_json(&mut got, &rules).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        let mut got = Vec::new();
        kept.write_json(&mut got, &rules).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );

        let (mut want, mut got) = (Vec::new(), Vec::new());
        output::write_json(&mut want, &[]).expect("write");
        Incidents::new(true)
            .write_json(&mut got, &rules)
            .expect("write");
        assert_eq!(got, want);
    }

    #[test]
    fn incidents_not_wanted_are_only_counted() {
        let mut none = Incidents::new(false);
        none.add(vec![Incident {
            id: 1,
            rule: 0,
            key: "k".into(),
            first_seen: Timestamp::UNIX_EPOCH,
            last_seen: Timestamp::UNIX_EPOCH,
            events: 1,
            sample: String::new(),
            fields: Vec::new(),
        }]);
        assert_eq!(none.len(), 1);
        assert!(none.buf.is_empty() && none.runs.is_empty());
    }
}
