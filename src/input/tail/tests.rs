use super::checkpoint::FINGERPRINT_BYTES;
use super::discovery::is_compressed;
use super::identity::HEAD;
use super::*;
use sha2::{Digest, Sha256};
use std::io::Write;

fn append(path: &Path, data: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(data).expect("append");
}

fn opts(pattern: &Path) -> TailOptions {
    let mut o = TailOptions::new("test", pattern.to_string_lossy());
    o.rotated_grace = Duration::from_secs(3600);
    // Every sweep tries an unreadable file again (the backoff has its test).
    o.retry_unreadable = Duration::ZERO;
    o
}

/// Everything `read` hands out now, checking each buffer holds whole lines.
fn drain(tail: &mut FileTail, budget: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut calls = 0;
    loop {
        let n = tail.read(budget, &mut |_, data| {
            assert!(!data.is_empty());
            assert_eq!(data.last(), Some(&b'\n'), "buffer ends inside a line");
            out.extend_from_slice(data);
        });
        if n == 0 {
            break;
        }
        calls += 1;
        assert!(calls < 1_000_000, "read never reaches the end");
    }
    out
}

fn kinds(notices: &[Notice]) -> Vec<NoticeKind> {
    notices.iter().map(|n| n.kind).collect()
}

/// Asserts that `notices` report something of `kind`.
fn assert_noticed(notices: &[Notice], kind: NoticeKind) {
    assert!(kinds(notices).contains(&kind), "{notices:?}");
}

/// A fresh directory and its log file's path (`a.log`, not created).
fn a_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("a.log");
    (tmp, log)
}

/// Line `i` of `line` for every `i` in `range`, concatenated.
fn numbered(range: std::ops::Range<usize>, line: impl Fn(usize) -> String) -> Vec<u8> {
    range.flat_map(|i| line(i).into_bytes()).collect()
}

/// A tail with no checkpoints that has made its first sweep.
fn swept(o: TailOptions) -> FileTail {
    let mut tail = FileTail::new(o, Vec::new()).expect("tail");
    tail.sweep();
    tail
}

/// A tail started from `checkpoints`, and what its first sweep noticed.
fn restarted(o: TailOptions, checkpoints: Vec<FileCheckpoint>) -> (FileTail, Vec<Notice>) {
    let mut tail = FileTail::new(o, checkpoints).expect("tail");
    let notices = tail.sweep();
    (tail, notices)
}

/// Writes `data`, whole lines, to `log`; a tail of it that has read them.
fn read_through(log: &Path, data: &[u8]) -> FileTail {
    append(log, data);
    let mut tail = swept(opts(log));
    assert_eq!(drain(&mut tail, 1 << 20), data);
    tail
}

#[test]
fn final_line_waits_for_its_newline() {
    let (_tmp, log) = a_log();
    append(&log, b"one\ntw");
    let mut tail = swept(opts(&log));
    assert_eq!(drain(&mut tail, 1 << 20), b"one\n");
    assert_eq!(tail.checkpoints()[0].offset, 4);
    append(&log, b"o");
    tail.sweep();
    assert_eq!(drain(&mut tail, 1 << 20), b"");
    append(&log, b"\nthree\n");
    tail.sweep();
    assert_eq!(drain(&mut tail, 1 << 20), b"two\nthree\n");
    assert_eq!(tail.checkpoints()[0].offset, 14);
    let s = tail.stats();
    assert_eq!((s.lines, s.bytes, s.bytes_behind), (3, 14, 0));
}

#[test]
fn long_lines_are_cut_whatever_the_reads() {
    let (_tmp, log) = a_log();
    let mut data = b"short\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 1000));
    data.extend(b"\nexactly8\nafter\n");
    data.extend(std::iter::repeat_n(b'y', 30));
    data.extend(b"\n");
    let want = b"short\nxxxxxxxx\nexactly8\nafter\nyyyyyyyy\n";
    for chunk in [1, 3, 7, 8, 9, 64, 4096] {
        for budget in [1, 5, 100, 1 << 20] {
            let _ = fs::remove_file(&log);
            append(&log, &data);
            let mut o = opts(&log);
            o.max_line = 8;
            let mut tail = FileTail::new(o, Vec::new()).expect("tail");
            tail.chunk = chunk;
            tail.sweep();
            let got = drain(&mut tail, budget);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want),
                "chunk {chunk} budget {budget}"
            );
            let s = tail.stats();
            assert_eq!(s.cut_lines, 2, "chunk {chunk} budget {budget}");
            assert_eq!(s.lines, 5);
            assert_eq!(s.bytes, data.len() as u64);
            assert_eq!(tail.checkpoints()[0].offset, data.len() as u64);
        }
    }
}

#[test]
fn an_endless_line_does_not_move_the_checkpoint_or_grow_memory() {
    let (_tmp, log) = a_log();
    append(&log, b"first\n");
    let mut o = opts(&log);
    o.max_line = 16;
    let mut tail = FileTail::new(o, Vec::new()).expect("tail");
    tail.chunk = 1024;
    tail.sweep();
    assert_eq!(drain(&mut tail, 4096), b"first\n");
    let block = vec![b'z'; 100_000];
    for _ in 0..20 {
        append(&log, &block);
        tail.sweep();
        assert_eq!(drain(&mut tail, 4096), b"");
        // Reads are bounded by the budget, not by the line.
        assert!(tail.buf.len() <= 4096 + 16 + 1024, "{}", tail.buf.len());
        assert!(tail.files[0].carry.len() <= 16);
    }
    assert_eq!(tail.checkpoints()[0].offset, 6);
    append(&log, b"\nnext\n");
    tail.sweep();
    assert_eq!(drain(&mut tail, 4096), b"zzzzzzzzzzzzzzzz\nnext\n");
    assert_eq!(tail.stats().cut_lines, 1);
}

#[test]
fn bytes_pass_through_untouched() {
    let (_tmp, log) = a_log();
    let data = b"caf\xe9 \xff\xfe\n\0\0nul\0\n\r\n\xc3\x28 end\n";
    let tail = read_through(&log, data);
    assert_eq!(tail.stats().lines, 4);
}

#[test]
fn big_buffers_of_many_lines() {
    let (_tmp, log) = a_log();
    let data = numbered(0..50_000, |i| format!("line {i:06} some text\n"));
    append(&log, &data);
    let mut tail = swept(opts(&log));
    let mut calls = 0;
    let mut got = Vec::new();
    while tail.read(1 << 20, &mut |_, d| {
        calls += 1;
        got.extend_from_slice(d);
    }) > 0
    {}
    assert_eq!(got, data);
    // ~1.1 MB in 1 MiB budgets: a couple of sink calls, not one per line.
    assert!(calls <= 3, "{calls} sink calls");
}

#[test]
fn start_at_end_only_on_first_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a.log");
    let b = tmp.path().join("b.log");
    append(&a, b"old 1\nold 2\npart");
    append(&b, b"old b\n");
    let mut o = opts(&tmp.path().join("*.log"));
    o.start_at_end = true;
    let mut tail = FileTail::new(o.clone(), Vec::new()).expect("tail");
    tail.sweep();
    assert_eq!(drain(&mut tail, 1 << 20), b"");
    // The line being written at start is read once complete.
    append(&a, b"ial\nnew\n");
    let c = tmp.path().join("c.log");
    append(&c, b"c from the start\n");
    tail.sweep();
    let got = drain(&mut tail, 1 << 20);
    let mut lines: Vec<&[u8]> = got.split_inclusive(|&b| b == b'\n').collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![&b"c from the start\n"[..], b"new\n", b"partial\n"]
    );

    // Restart: a file without checkpoint is new, whatever start_at_end says.
    let cps: Vec<FileCheckpoint> = tail
        .checkpoints()
        .into_iter()
        .filter(|c| !c.path.ends_with("c.log"))
        .collect();
    drop(tail);
    append(&c, b"c more\n");
    let (mut tail, notices) = restarted(o, cps);
    assert_noticed(&notices, NoticeKind::Resumed);
    assert_eq!(drain(&mut tail, 1 << 20), b"c from the start\nc more\n");
}

#[test]
fn start_at_end_in_a_huge_partial_line_skips_it() {
    let (_tmp, log) = a_log();
    append(&log, b"old\n");
    append(&log, &[b'q'; 100]);
    let mut o = opts(&log);
    o.start_at_end = true;
    o.max_line = 10;
    let mut tail = swept(o);
    append(&log, b"qq\nnew\n");
    tail.sweep();
    assert_eq!(drain(&mut tail, 1 << 20), b"new\n");
}

#[test]
fn rotated_file_closes_after_grace_with_its_partial_line() {
    let (tmp, log) = a_log();
    append(&log, b"one\nunfinished");
    let mut o = opts(&log);
    o.rotated_grace = Duration::ZERO;
    let mut tail = swept(o);
    assert_eq!(drain(&mut tail, 1 << 20), b"one\n");
    fs::rename(&log, tmp.path().join("a.log.1")).expect("rename");
    append(&log, b"new\n");
    let notices = tail.sweep();
    assert_noticed(&notices, NoticeKind::Rotated);
    assert!(notices.iter().any(|n| n.message.contains("a.log.1")));
    // The rotated file is read to its end (the unfinished line is handed
    // out, newline added) and closed before its successor is read.
    assert_eq!(drain(&mut tail, 1 << 20), b"unfinished\nnew\n");
    let notices = tail.sweep();
    assert_noticed(&notices, NoticeKind::Closed);
    assert_eq!(tail.checkpoints().len(), 1);
    assert_eq!(tail.stats().rotations, 1);
}

#[test]
fn rotated_file_stays_open_while_it_grows() {
    let (tmp, log) = a_log();
    let rotated = tmp.path().join("a.log.1");
    append(&log, b"one\n");
    let mut o = opts(&log);
    o.rotated_grace = Duration::from_millis(50);
    let mut tail = swept(o);
    drain(&mut tail, 1 << 20);
    fs::rename(&log, &rotated).expect("rename");
    tail.sweep();
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(30));
        append(&rotated, format!("late {i}\n").as_bytes());
        tail.sweep();
        assert_eq!(drain(&mut tail, 1 << 20), format!("late {i}\n").as_bytes());
    }
    assert_eq!(tail.stats().files_open, 1);
}

#[test]
fn an_unreadable_file_is_tried_again_less_and_less_often() {
    let (_tmp, log) = a_log();
    append(&log, b"line\n");
    let mut o = opts(&log);
    o.retry_unreadable = Duration::from_millis(40);
    let mut tail = FileTail::unstarted(o).expect("tail");
    tail.deny_open.insert(log.clone());
    tail.start(Vec::new());
    assert_eq!(tail.stats().read_errors, 1);
    // Sweeps within the wait do not try: a busy pipeline sweeps often.
    for _ in 0..10 {
        tail.sweep();
    }
    assert_eq!(tail.stats().read_errors, 1);
    // 40 ms, then 80, 160, 320, ...: four attempts in about 700 ms, not one
    // a sweep.
    let until = std::time::Instant::now() + Duration::from_millis(700);
    while std::time::Instant::now() < until {
        tail.sweep();
        std::thread::sleep(Duration::from_millis(5));
    }
    let tries = tail.stats().read_errors;
    assert!((3..=6).contains(&tries), "{tries} attempts");
    // Readable again: taken at the next attempt, from the beginning.
    tail.deny_open.clear();
    std::thread::sleep(Duration::from_millis(40 * 32));
    tail.sweep();
    assert_eq!(drain(&mut tail, 1 << 20), b"line\n");
}

#[test]
fn unreadable_file_is_reported_counted_and_retried() {
    let (_tmp, log) = a_log();
    append(&log, b"before start\n");
    let mut o = opts(&log);
    o.start_at_end = true;
    let mut tail = FileTail::unstarted(o).expect("tail");
    tail.deny_open.insert(log.clone());
    tail.start(Vec::new());
    let n = tail.sweep();
    assert_eq!(kinds(&n), vec![NoticeKind::Unreadable]);
    assert_eq!(tail.stats().read_errors, 2, "the start and one sweep");
    assert_eq!(tail.stats().files_unreadable, 1);
    append(&log, b"while unreadable\n");
    let notices = tail.sweep();
    assert!(notices.is_empty(), "reported once: {notices:?}");
    assert_eq!(tail.stats().read_errors, 3);
    assert_eq!(drain(&mut tail, 1 << 20), b"");

    tail.deny_open.clear();
    let notices = tail.sweep();
    assert_eq!(
        kinds(&notices),
        vec![NoticeKind::Readable, NoticeKind::Opened]
    );
    // Starts where the end was when the input started.
    assert_eq!(drain(&mut tail, 1 << 20), b"while unreadable\n");
    assert_eq!(tail.stats().files_unreadable, 0);
}

#[test]
fn truncation_then_regrowth_is_not_read_as_continuation() {
    let (_tmp, log) = a_log();
    let old = numbered(0..100, |i| format!("old {i:03}\n"));
    let mut tail = read_through(&log, &old);
    // Truncated and regrown past our offset before any sweep.
    let f = fs::OpenOptions::new().write(true).open(&log).expect("open");
    f.set_len(0).expect("truncate");
    let new = numbered(0..200, |i| format!("new {i:03}\n"));
    append(&log, &new);
    // The read itself notices: nothing from the middle of the new content,
    // all of it from its start.
    assert_eq!(
        String::from_utf8_lossy(&drain(&mut tail, 1 << 20)),
        String::from_utf8_lossy(&new)
    );
    let notices = tail.sweep();
    assert_noticed(&notices, NoticeKind::Truncated);
    assert_eq!(tail.stats().truncations, 1);
}

#[test]
fn copytruncate_reads_the_copy_tail_first() {
    let (tmp, log) = a_log();
    let lines = |r| numbered(r, |i| format!("seq={i:06}\n"));
    let mut tail = read_through(&log, &lines(0..100));
    append(&log, &lines(100..150));
    // An older copy with other content must not be taken for the copy.
    fs::write(tmp.path().join("a.log.2"), lines(1000..1200)).expect("old copy");
    fs::copy(&log, tmp.path().join("a.log.1")).expect("copy");
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    append(&log, &lines(150..160));
    let notices = tail.sweep();
    assert_noticed(&notices, NoticeKind::CopyFound);
    let mut want = lines(100..150);
    want.extend(lines(150..160));
    assert_eq!(drain(&mut tail, 7), want);
}

#[test]
fn checkpoints_that_match_nothing_are_dropped() {
    let (tmp, log) = a_log();
    let cps = read_through(&log, b"one\ntwo\n").checkpoints();

    let mut other = cps[0].clone();
    other.input = "other".into();
    let mut gone = cps[0].clone();
    gone.ino = gone.ino.wrapping_add(1_000_000);
    gone.path = tmp.path().join("gone.log").to_string_lossy().into();
    let (mut tail, notices) = restarted(opts(&log), vec![other, gone]);
    assert_eq!(
        kinds(&notices)
            .iter()
            .filter(|k| **k == NoticeKind::CheckpointDropped)
            .count(),
        2,
        "{notices:?}"
    );
    // a.log has no usable checkpoint: new, from the beginning.
    assert_eq!(drain(&mut tail, 1 << 20), b"one\ntwo\n");

    // Same inode, other content (rewritten in place while stopped).
    fs::write(&log, b"ONE\nTWO\nTHREE\n").expect("rewrite");
    let (mut tail, notices) = restarted(opts(&log), cps);
    assert_noticed(&notices, NoticeKind::Truncated);
    assert_eq!(drain(&mut tail, 1 << 20), b"ONE\nTWO\nTHREE\n");
}

#[test]
fn fingerprint_covers_the_first_bytes_as_the_file_grows() {
    let (_tmp, log) = a_log();
    let mut tail = read_through(&log, b"short\n");
    let cp = &tail.checkpoints()[0];
    assert_eq!(cp.fingerprint_len, 6);
    assert_eq!(cp.fingerprint, <[u8; 32]>::from(Sha256::digest(b"short\n")));
    append(&log, &[b'a'; 2000]);
    append(&log, b"\n");
    tail.sweep();
    drain(&mut tail, 1 << 20);
    let cp = &tail.checkpoints()[0];
    assert_eq!(cp.fingerprint_len, FINGERPRINT_BYTES);
    let content = fs::read(&log).expect("read");
    assert_eq!(
        cp.fingerprint,
        <[u8; 32]>::from(Sha256::digest(&content[..HEAD]))
    );
}

#[test]
fn watch_dirs_cover_pattern_and_files() {
    assert_eq!(base_dir("/var/log/auth.log"), PathBuf::from("/var/log"));
    assert_eq!(
        base_dir("/var/log/nginx/*access.log"),
        PathBuf::from("/var/log/nginx")
    );
    assert_eq!(base_dir("/var/log/*/access.log"), PathBuf::from("/var/log"));
    assert_eq!(base_dir("auth.log"), PathBuf::from("."));
    assert_eq!(base_dir("*.log"), PathBuf::from("."));

    let tmp = tempfile::tempdir().expect("tempdir");
    let sub = tmp.path().join("a");
    fs::create_dir(&sub).expect("mkdir");
    append(&sub.join("x.log"), b"x\n");
    let tail = FileTail::new(opts(&tmp.path().join("*/x.log")), Vec::new()).expect("tail");
    let mut want = vec![tmp.path().to_path_buf(), sub];
    want.sort();
    let mut got = tail.watch_dirs();
    got.sort();
    // found_dirs is filled by sweeps; the open file's dir is there already.
    assert_eq!(got, want);
}

#[test]
fn invalid_pattern_is_an_error() {
    assert!(check_pattern("/var/log/[").is_err());
    assert!(FileTail::new(TailOptions::new("x", "/var/log/[a"), Vec::new()).is_err());
    assert!(check_pattern("/var/log/*.log").is_ok());
}

#[test]
fn unreadable_at_restart_resumes_at_its_checkpoint() {
    let (_tmp, log) = a_log();
    let cps = read_through(&log, b"one\ntwo\n").checkpoints();
    append(&log, b"three\n");
    let mut tail = FileTail::unstarted(opts(&log)).expect("tail");
    tail.deny_open.insert(log.clone());
    tail.start(cps);
    assert_eq!(kinds(&tail.sweep()), vec![NoticeKind::Unreadable]);
    assert!(tail.sweep().is_empty());
    assert_eq!(drain(&mut tail, 1 << 20), b"");
    tail.deny_open.clear();
    let notices = tail.sweep();
    assert_eq!(
        kinds(&notices),
        vec![NoticeKind::Readable, NoticeKind::Opened],
        "{notices:?}"
    );
    assert_eq!(drain(&mut tail, 1 << 20), b"three\n");
}

#[test]
fn lineage_of_rotated_names() {
    let tail =
        FileTail::unstarted(TailOptions::new("t", "/var/log/nginx/*access.log")).expect("tail");
    let origin = |p: &str| tail.lineage_origin(Path::new(p));
    assert_eq!(
        origin("/var/log/nginx/site.access.log-20240101.1"),
        Some(PathBuf::from("/var/log/nginx/site.access.log"))
    );
    assert_eq!(
        origin("/var/log/nginx/access.log.2"),
        Some(PathBuf::from("/var/log/nginx/access.log"))
    );
    assert_eq!(origin("/var/log/nginx/error.log.1"), None);
    assert_eq!(origin("/var/log/nginx/access.log"), None);
    assert!(is_compressed(Path::new("/var/log/auth.log.2.gz")));
    assert!(!is_compressed(Path::new("/var/log/auth.log.2")));
}

#[test]
fn generations_rotated_away_while_stopped_are_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("auth.log");
    let name = |n: u32| tmp.path().join(format!("auth.log.{n}"));
    let cps = read_through(&log, b"a1\n").checkpoints();
    // Older generations, already read long ago.
    fs::write(name(3), b"old\n").expect("old");
    let sleep = || std::thread::sleep(Duration::from_millis(20));
    sleep();
    append(&log, b"a2\n");
    fs::rename(&log, name(1)).expect("rotate");
    sleep();
    append(&log, b"b1\n");
    fs::rename(name(1), name(2)).expect("shift");
    fs::rename(&log, name(1)).expect("rotate");
    sleep();
    append(&log, b"c1\n");
    // Compressed generations are not text.
    fs::write(tmp.path().join("auth.log.1.gz"), b"b1\n").expect("gz");
    let (mut tail, notices) = restarted(opts(&log), cps);
    assert!(
        notices
            .iter()
            .any(|n| n.path == name(1) && n.message.contains("while stopped")),
        "{notices:?}"
    );
    assert_eq!(drain(&mut tail, 1), b"a2\nb1\nc1\n");
}
