//! The file tail against real files, with writer threads appending numbered
//! lines while files are rotated, truncated, deleted and the tail restarted:
//! every line must come out exactly once. Outcomes do not depend on timing
//! (timing only changes which code path is taken); every wait is bounded.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use canhgac::input::checkpoint::FileCheckpoint;
use canhgac::input::tail::{FileTail, Notice, NoticeKind, TailOptions};
use canhgac::input::watch::Wakeup;

use common::logs::shift;

const DEADLINE: Duration = Duration::from_secs(60);

/// `seq=00000123 xxxx… end\n`, of varying length.
fn line(seq: u64) -> String {
    format!("seq={seq:08} {} end\n", "x".repeat((seq % 53) as usize))
}

fn parse(l: &[u8]) -> Option<u64> {
    let l = l.strip_suffix(b"\n")?;
    let s = std::str::from_utf8(l).ok()?;
    let rest = s.strip_prefix("seq=")?;
    let seq: u64 = rest.get(..8)?.parse().ok()?;
    (l.len() == line(seq).len() - 1 && s == &line(seq)[..l.len()]).then_some(seq)
}

fn append_open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// What came out of the tail.
#[derive(Clone, Default)]
struct Seen {
    counts: HashMap<u64, u32>,
    order: Vec<u64>,
    malformed: Vec<String>,
}

impl Seen {
    fn take(&mut self, data: &[u8]) {
        assert_eq!(data.last(), Some(&b'\n'), "buffer ends inside a line");
        for l in data.split_inclusive(|&b| b == b'\n') {
            match parse(l) {
                Some(seq) => {
                    *self.counts.entry(seq).or_default() += 1;
                    self.order.push(seq);
                }
                None => self.malformed.push(String::from_utf8_lossy(l).into_owned()),
            }
        }
    }

    fn missing(&self, want: impl Iterator<Item = u64>) -> Vec<u64> {
        want.filter(|s| !self.counts.contains_key(s)).collect()
    }

    fn dups(&self) -> Vec<(u64, u32)> {
        let mut d: Vec<(u64, u32)> = self
            .counts
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(&s, &n)| (s, n))
            .collect();
        d.sort();
        d
    }
}

struct Reader {
    tail: FileTail,
    seen: Seen,
    notices: Vec<Notice>,
    budget: usize,
    /// Lines seen so far, for writers that wait for the reader.
    progress: Arc<AtomicU64>,
}

impl Reader {
    fn new(opts: TailOptions, checkpoints: Vec<FileCheckpoint>) -> Self {
        Reader {
            tail: FileTail::new(opts, checkpoints).expect("pattern"),
            seen: Seen::default(),
            notices: Vec::new(),
            budget: 64 * 1024,
            progress: Arc::new(AtomicU64::new(0)),
        }
    }

    fn pump(&mut self) {
        self.notices.extend(self.tail.sweep());
        let seen = &mut self.seen;
        while self.tail.read(self.budget, &mut |_, d| seen.take(d)) > 0 {}
        self.progress
            .store(self.seen.order.len() as u64, Ordering::SeqCst);
    }

    /// Pumps until every line of `want` has been seen (or the deadline),
    /// then a little more so duplicates would show, and checks exactly once.
    fn finish(&mut self, want: impl Iterator<Item = u64> + Clone) {
        let deadline = Instant::now() + DEADLINE;
        while !self.seen.missing(want.clone()).is_empty() && Instant::now() < deadline {
            self.pump();
            thread::sleep(Duration::from_millis(2));
        }
        for _ in 0..5 {
            self.pump();
            thread::sleep(Duration::from_millis(2));
        }
        self.check(want);
    }

    fn check(&self, want: impl Iterator<Item = u64> + Clone) {
        let missing = self.seen.missing(want.clone());
        let total = want.clone().count();
        let notices: Vec<String> = self.notices.iter().map(|n| n.to_string()).collect();
        assert!(
            missing.is_empty(),
            "{} of {total} lines missing, first {:?}\nnotices: {notices:#?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        let dups = self.seen.dups();
        assert!(
            dups.is_empty(),
            "{} lines read more than once, first {:?}\nnotices: {notices:#?}",
            dups.len(),
            &dups[..dups.len().min(20)]
        );
        assert!(
            self.seen.malformed.is_empty(),
            "malformed lines: {:?}",
            &self.seen.malformed[..self.seen.malformed.len().min(5)]
        );
        let extra = self.seen.counts.len() - (total - missing.len());
        assert_eq!(extra, 0, "lines that were never expected");
    }

    /// Driven as the daemon drives it until `writer` is done: sweep, watch
    /// the directories the tail asks for, read, sleep until woken (or
    /// `nap` has passed); then joins the writer.
    fn run_woken(
        &mut self,
        wakeup: &mut Wakeup,
        writer: JoinHandle<io::Result<()>>,
        nap: Duration,
    ) {
        let deadline = Instant::now() + DEADLINE;
        while !writer.is_finished() && Instant::now() < deadline {
            self.pump();
            wakeup.set_dirs(&self.tail.watch_dirs());
            wakeup.wait(nap);
        }
        join(writer);
    }

    fn saw(&self, kind: NoticeKind) -> bool {
        self.notices.iter().any(|n| n.kind == kind)
    }
}

/// Shared between a writer thread and whoever rotates its file.
#[derive(Default)]
struct Control {
    /// Set by the rotator (like logrotate's HUP): the writer reopens its
    /// path before the next line and clears it.
    reopen: AtomicBool,
    /// Set by the rotator for the reader to pause, so that files are
    /// rotated, compressed or deleted with lines still unread.
    pause_reader: AtomicBool,
    /// Lines written so far.
    written: AtomicU64,
    done: AtomicBool,
}

impl Control {
    /// Asks the writer to reopen and waits until it has (bounded).
    fn reopen_and_wait(&self) {
        self.reopen.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + DEADLINE;
        while self.reopen.load(Ordering::SeqCst)
            && !self.done.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// Waits until the writer has written `n` more lines (bounded).
    fn wait_lines(&self, n: u64) {
        let target = self.written.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + DEADLINE;
        while self.written.load(Ordering::SeqCst) < target
            && !self.done.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Appends lines `seqs` to `path` in small bursts with short sleeps, each
/// burst one write, reopening `path` when asked.
fn spawn_writer(
    path: PathBuf,
    seqs: std::ops::Range<u64>,
    ctl: Arc<Control>,
) -> JoinHandle<io::Result<()>> {
    spawn_writer_on(None, path, seqs, ctl)
}

/// As [`spawn_writer`], starting on `file` if given (opened beforehand,
/// e.g. before its mode is taken away).
fn spawn_writer_on(
    file: Option<File>,
    path: PathBuf,
    seqs: std::ops::Range<u64>,
    ctl: Arc<Control>,
) -> JoinHandle<io::Result<()>> {
    thread::spawn(move || {
        let result = (|| {
            let mut file = match file {
                Some(f) => f,
                None => append_open(&path)?,
            };
            let mut seq = seqs.start;
            let mut burst = String::new();
            while seq < seqs.end {
                if ctl.reopen.load(Ordering::SeqCst) {
                    file = append_open(&path)?;
                    ctl.reopen.store(false, Ordering::SeqCst);
                }
                burst.clear();
                let n = 1 + seq % 7;
                for _ in 0..n {
                    if seq == seqs.end {
                        break;
                    }
                    burst.push_str(&line(seq));
                    seq += 1;
                }
                file.write_all(burst.as_bytes())?;
                ctl.written.store(seq - seqs.start, Ordering::SeqCst);
                thread::sleep(Duration::from_micros(150));
            }
            Ok(())
        })();
        ctl.done.store(true, Ordering::SeqCst);
        result
    })
}

/// Pumps the reader (unless paused) until `busy` threads are all done.
fn run_reader(reader: &mut Reader, ctl: &[&Control], busy: &[&JoinHandle<io::Result<()>>]) {
    let deadline = Instant::now() + DEADLINE;
    while busy.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
        if !ctl.iter().any(|c| c.pause_reader.load(Ordering::SeqCst)) {
            reader.pump();
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn join(h: JoinHandle<io::Result<()>>) {
    h.join().expect("thread panicked").expect("thread I/O");
}

fn opts(pattern: &Path) -> TailOptions {
    let mut o = TailOptions::new("test", pattern.to_string_lossy());
    // Long enough that no rotated file is closed while a test runs: closing
    // has its own unit tests.
    o.rotated_grace = Duration::from_secs(600);
    o
}

const LINES: u64 = 12_000;

/// Writes `LINES` lines to `name` in a fresh directory while `rotate(log,
/// ctl, round)` rotates it eight times, each after another 1,000 lines, and
/// reads it all: every line must arrive once, in order.
fn rotate_while_writing(
    name: &str,
    rotate: impl Fn(&Path, &Control, u64) -> io::Result<()> + Send + 'static,
) -> Reader {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join(name);
    let ctl = Arc::new(Control::default());
    let mut reader = Reader::new(opts(&log), Vec::new());
    let writer = spawn_writer(log.clone(), 0..LINES, Arc::clone(&ctl));
    let rotator = {
        let (log, ctl) = (log.clone(), Arc::clone(&ctl));
        thread::spawn(move || -> io::Result<()> {
            for round in 0..8u64 {
                ctl.wait_lines(1000);
                rotate(&log, &ctl, round)?;
            }
            Ok(())
        })
    };
    run_reader(&mut reader, &[&ctl], &[&writer, &rotator]);
    join(writer);
    join(rotator);
    reader.finish(0..LINES);
    reader
}

/// Holds the reader back (`hold`) until 200 more lines are written, so the
/// rotation that follows finds lines unread.
fn hold_reader(ctl: &Control, hold: bool) {
    ctl.pause_reader.store(hold, Ordering::SeqCst);
    if hold {
        ctl.wait_lines(200);
    }
}

#[test]
fn rename_and_create_rotation() {
    let reader = rotate_while_writing("auth.log", |log, ctl, round| {
        shift(log, 4)?;
        File::create(log)?;
        // The writer keeps appending to the old file until it reopens.
        thread::sleep(Duration::from_millis(round % 4));
        ctl.reopen_and_wait();
        Ok(())
    });
    assert!(reader.saw(NoticeKind::Rotated));
    assert_eq!(reader.tail.stats().rotations, 8);
}

#[test]
fn rotation_with_delayed_compression() {
    rotate_while_writing("auth.log", |log, ctl, round| {
        let one = PathBuf::from(format!("{}.1", log.display()));
        // Every other time, the reader is held back so the file is
        // compressed and deleted with lines unread, the rotation itself
        // unseen.
        hold_reader(ctl, round % 2 == 0);
        shift(log, 4)?;
        File::create(log)?;
        ctl.reopen_and_wait();
        ctl.wait_lines(50);
        // "Compress" auth.log.1 (the content is what matters to the
        // name-blind tail, not the format), then delete it.
        let data = fs::read(&one)?;
        fs::write(format!("{}.gz", one.display()), data)?;
        fs::remove_file(&one)?;
        hold_reader(ctl, false);
        Ok(())
    });
}

#[test]
fn delete_and_recreate() {
    let reader = rotate_while_writing("app.log", |log, ctl, round| {
        hold_reader(ctl, round % 3 == 0);
        fs::remove_file(log)?;
        // Sometimes the writer itself recreates the file on reopen.
        if round % 2 == 0 {
            File::create(log)?;
        }
        thread::sleep(Duration::from_millis(round % 3));
        ctl.reopen_and_wait();
        hold_reader(ctl, false);
        Ok(())
    });
    assert!(reader.saw(NoticeKind::Deleted));
}

#[test]
fn truncation_in_place() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("app.log");
    let mut reader = Reader::new(opts(&log), Vec::new());
    let progress = Arc::clone(&reader.progress);
    let pause = Arc::new(Control::default());
    // The writer truncates its own file and goes on from offset 0. Lines
    // destroyed by a truncation before being read are lost by definition,
    // so it truncates only once the reader has seen everything; then it
    // either trickles on, or (reader held) writes more than there was, so
    // only the changed first bytes can tell.
    let writer = {
        let (log, pause) = (log.clone(), Arc::clone(&pause));
        thread::spawn(move || -> io::Result<()> {
            let result = (|| {
                let file = append_open(&log)?;
                let mut seq = 0;
                for round in 0..8u64 {
                    for _ in 0..200 {
                        let mut w = &file;
                        w.write_all(format!("{}{}", line(seq), line(seq + 1)).as_bytes())?;
                        seq += 2;
                        thread::sleep(Duration::from_micros(100));
                    }
                    let deadline = Instant::now() + DEADLINE;
                    while progress.load(Ordering::SeqCst) < seq && Instant::now() < deadline {
                        thread::sleep(Duration::from_micros(200));
                    }
                    let burst = round % 2 == 1;
                    pause.pause_reader.store(burst, Ordering::SeqCst);
                    file.set_len(0)?;
                    if burst {
                        let mut w = &file;
                        let mut big = String::new();
                        for _ in 0..1000 {
                            big.push_str(&line(seq));
                            seq += 1;
                        }
                        w.write_all(big.as_bytes())?;
                        pause.pause_reader.store(false, Ordering::SeqCst);
                    }
                }
                pause.written.store(seq, Ordering::SeqCst);
                Ok(())
            })();
            pause.done.store(true, Ordering::SeqCst);
            result
        })
    };
    run_reader(&mut reader, &[&pause], &[&writer]);
    join(writer);
    let total = pause.written.load(Ordering::SeqCst);
    assert!(total > 0);
    reader.finish(0..total);
    assert_eq!(reader.tail.stats().truncations, 8);
}

#[test]
fn new_files_appearing_under_a_glob() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // Present at the first start: skipped with start_at_end, then followed.
    let a = dir.join("a.access.log");
    fs::write(&a, format!("{}{}", line(99_999_998), line(99_999_999))).expect("old a");
    fs::write(dir.join("ignored.txt"), line(99_999_997)).expect("other file");
    let mut o = opts(&dir.join("*.access.log"));
    o.start_at_end = true;
    let mut reader = Reader::new(o, Vec::new());
    reader.pump();
    let ctls: Vec<Arc<Control>> = (0..4).map(|_| Arc::new(Control::default())).collect();
    let mut writers = Vec::new();
    for (k, ctl) in ctls.iter().enumerate() {
        let path = if k == 0 {
            a.clone()
        } else {
            dir.join(format!("site{k}.access.log"))
        };
        let start = k as u64 * 1_000_000;
        if k > 0 {
            // Files appear one after the other while the others are written.
            thread::sleep(Duration::from_millis(20));
        }
        writers.push(spawn_writer(path, start..start + 3000, Arc::clone(ctl)));
        reader.pump();
    }
    let c: Vec<&Control> = ctls.iter().map(|c| c.as_ref()).collect();
    let w: Vec<&JoinHandle<io::Result<()>>> = writers.iter().collect();
    run_reader(&mut reader, &c, &w);
    writers.into_iter().for_each(join);
    let want = (0..4u64).flat_map(|k| k * 1_000_000..k * 1_000_000 + 3000);
    reader.finish(want);
    assert_eq!(reader.tail.stats().files_open, 4);
}

#[test]
fn file_missing_at_start_is_read_from_its_beginning() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Not even the directory exists yet.
    let dir = tmp.path().join("later");
    let log = dir.join("app.log");
    let mut o = opts(&log);
    o.start_at_end = true;
    let mut reader = Reader::new(o, Vec::new());
    let mut wakeup = Wakeup::new();
    reader.pump();
    assert!(!wakeup.set_dirs(&reader.tail.watch_dirs()).is_empty());
    thread::sleep(Duration::from_millis(20));
    fs::create_dir(&dir).expect("mkdir");
    let ctl = Arc::new(Control::default());
    let writer = spawn_writer(log.clone(), 0..3000, Arc::clone(&ctl));
    reader.run_woken(&mut wakeup, writer, Duration::from_millis(200));
    assert_eq!(wakeup.watched(), vec![dir]);
    reader.finish(0..3000);
}

#[test]
fn unreadable_file_is_retried_until_readable() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("secure.log");
    fs::write(&log, format!("{}{}", line(0), line(1))).expect("write");
    // The writer holds its file open, as a daemon does.
    let held = append_open(&log).expect("open for the writer");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o000)).expect("chmod 000");
    // Root (CAP_DAC_OVERRIDE) reads whatever the mode says.
    let blocked = File::open(&log).is_err();
    let mut reader = Reader::new(opts(&log), Vec::new());
    let ctl = Arc::new(Control::default());
    let writer = spawn_writer_on(Some(held), log.clone(), 2..3000, Arc::clone(&ctl));
    ctl.wait_lines(500);
    for _ in 0..3 {
        reader.pump();
    }
    if blocked {
        assert!(reader.saw(NoticeKind::Unreadable), "{:?}", reader.notices);
        assert_eq!(
            reader
                .notices
                .iter()
                .filter(|n| n.kind == NoticeKind::Unreadable)
                .count(),
            1,
            "reported once"
        );
        let stats = reader.tail.stats();
        assert!(stats.read_errors >= 3, "{stats:?}");
        assert_eq!(stats.files_unreadable, 1);
        assert!(reader.seen.order.is_empty());
    } else {
        println!("note: running as root, chmod 000 does not block reading; unreadable-file assertions skipped (the unit test input::tail::tests::unreadable_file_is_reported_counted_and_retried covers them)");
    }
    fs::set_permissions(&log, fs::Permissions::from_mode(0o640)).expect("chmod 640");
    run_reader(&mut reader, &[&ctl], &[&writer]);
    join(writer);
    reader.finish(0..3000);
    if blocked {
        assert!(reader.saw(NoticeKind::Readable));
        assert_eq!(reader.tail.stats().files_unreadable, 0);
    }
}

#[test]
fn rotated_file_with_unread_lines_is_finished_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("auth.log");
    let mut reader = Reader::new(opts(&log), Vec::new());
    reader.budget = 4096;
    let mut f = append_open(&log).expect("open");
    for seq in 0..5000 {
        f.write_all(line(seq).as_bytes()).expect("write");
    }
    // Read only a little of it.
    reader.tail.sweep();
    let seen = &mut reader.seen;
    reader.tail.read(4096, &mut |_, d| seen.take(d));
    assert!(reader.seen.order.len() < 500);
    fs::rename(&log, tmp.path().join("auth.log.1")).expect("rotate");
    let mut g = append_open(&log).expect("new file");
    for seq in 5000..5500 {
        f.write_all(line(seq).as_bytes()).expect("write old");
    }
    for seq in 5500..8000 {
        g.write_all(line(seq).as_bytes()).expect("write new");
    }
    // Small reads, many sweeps: every line of the old file comes first.
    reader.finish(0..8000);
    assert_eq!(reader.seen.order, (0..8000).collect::<Vec<u64>>());
}

#[test]
fn restart_from_checkpoints_across_rotations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("auth.log");
    let ctl = Arc::new(Control::default());
    let o = opts(&log);
    let mut reader = Reader::new(o.clone(), Vec::new());
    let writer = spawn_writer(log.clone(), 0..LINES, Arc::clone(&ctl));
    // Lines whose checkpoint was stored: what a restart must not read again.
    let mut committed = Seen::default();
    for round in 0..6u64 {
        ctl.wait_lines(800);
        reader.pump();
        // Store: lines so far and the checkpoints that go with them.
        let checkpoints = reader.tail.checkpoints();
        committed = reader.seen.clone();
        // Lines read after the last stored checkpoint die with the
        // process (kill -9): read some, then forget them.
        ctl.wait_lines(100);
        reader.pump();
        let mut notices = std::mem::take(&mut reader.notices);
        notices.push(Notice {
            path: PathBuf::from(format!("--- restart {round}")),
            kind: NoticeKind::Opened,
            message: format!("{checkpoints:?}"),
        });
        drop(reader);
        // While stopped: rotations (one, two, or none).
        for _ in 0..round % 3 {
            ctl.wait_lines(150);
            shift(&log, 5).expect("rotate");
            File::create(&log).expect("create");
            ctl.reopen_and_wait();
        }
        ctl.wait_lines(100);
        reader = Reader::new(o.clone(), checkpoints);
        reader.seen = committed.clone();
        notices.append(&mut reader.notices);
        reader.notices = notices;
        reader.pump();
        if round % 3 != 0 {
            assert!(reader.saw(NoticeKind::Resumed), "{:?}", reader.notices);
        }
        if round % 3 == 2 {
            // The middle generation was created and rotated away unseen.
            assert!(
                reader
                    .notices
                    .iter()
                    .any(|n| n.message.contains("rotated away from")),
                "{:?}",
                reader.notices
            );
        }
    }
    run_reader(&mut reader, &[&ctl], &[&writer]);
    join(writer);
    reader.finish(0..LINES);
    assert!(!committed.order.is_empty());
}

/// copytruncate is racy by design (see the module docs of the tail): lines
/// written between the end of the copy and the truncation that the tail had
/// not read yet are in neither file. This measures how many are lost under
/// a realistic rotation, asserts that nothing else is lost and nothing is
/// read twice, and prints the figure.
#[test]
fn copytruncate_loss_is_bounded_and_measured() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("app.log");
    let ctl = Arc::new(Control::default());
    let mut reader = Reader::new(opts(&log), Vec::new());
    let total = 20_000;
    let started = Instant::now();
    let writer = spawn_writer(log.clone(), 0..total, Arc::clone(&ctl));
    let rotations = 20;
    let rotator = {
        let (log, ctl) = (log.clone(), Arc::clone(&ctl));
        thread::spawn(move || -> io::Result<Vec<Vec<u8>>> {
            let one = PathBuf::from(format!("{}.1", log.display()));
            let mut copies = Vec::new();
            for _ in 0..rotations {
                thread::sleep(Duration::from_millis(30));
                if ctl.done.load(Ordering::SeqCst) {
                    break;
                }
                // As logrotate: shift, copy, truncate the original in place.
                if one.exists() {
                    shift(&one, 3)?;
                }
                fs::copy(&log, &one)?;
                OpenOptions::new().write(true).open(&log)?.set_len(0)?;
                copies.push(fs::read(&one)?);
            }
            Ok(copies)
        })
    };
    reader.run_woken(&mut Wakeup::new(), writer, Duration::from_secs(1));
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let copies = rotator
        .join()
        .expect("rotator panicked")
        .expect("rotator I/O");
    for _ in 0..20 {
        reader.pump();
        thread::sleep(Duration::from_millis(5));
    }

    // Each generation's lines are in its copy (or, for the last, the file
    // itself); what lies between the last line of one generation and the
    // first of the next was written between copy and truncation.
    let mut generations: Vec<Vec<u8>> = copies;
    generations.push(fs::read(&log).expect("final log"));
    let mut windows = Vec::new();
    let mut last_of_prev: Option<u64> = None;
    for g in &generations {
        let seqs: Vec<u64> = g
            .split_inclusive(|&b| b == b'\n')
            .filter_map(parse)
            .collect();
        if let (Some(prev), Some(&first)) = (last_of_prev, seqs.first()) {
            windows.push(prev + 1..first);
        }
        if let Some(&last) = seqs.last() {
            last_of_prev = Some(last);
        }
    }
    let in_window = |s: u64| windows.iter().any(|w| w.contains(&s));
    let window_lines: u64 = windows.iter().map(|w| w.end - w.start).sum();
    let missing = reader.seen.missing(0..total);
    let unexplained: Vec<u64> = missing.iter().copied().filter(|&s| !in_window(s)).collect();
    println!(
        "copytruncate: {} rotations, {} lines written at {rate:.0}/s, {} written between copy and truncation, {} of those lost ({:.3}% of all lines); copy found and read {} times",
        generations.len() - 1,
        total,
        window_lines,
        missing.len(),
        missing.len() as f64 * 100.0 / total as f64,
        reader
            .notices
            .iter()
            .filter(|n| n.kind == NoticeKind::CopyFound)
            .count()
    );
    assert!(
        unexplained.is_empty(),
        "lost outside the copytruncate window: {unexplained:?}"
    );
    assert!(
        reader.seen.dups().is_empty(),
        "read twice: {:?}",
        reader.seen.dups()
    );
    // A copy may end inside a line (copied while being written): that line
    // is only ever handed out when the copy is closed, not during the test.
    assert!(
        reader.seen.malformed.is_empty(),
        "{:?}",
        reader.seen.malformed
    );
    let _: BTreeMap<u64, u64> = BTreeMap::new();
}
