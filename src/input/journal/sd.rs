//! The journal read in-process through libsystemd's `sd-journal`, loaded
//! with `dlopen` when a journal input first opens.
//!
//! Loaded at run time, not linked: the binary starts (and `scan`, `report`,
//! the file and network inputs work) on a machine without `libsystemd0`,
//! and the journal input then fails to open with a message that says what
//! is missing. Every systemd machine has `libsystemd.so.0`: `systemd`
//! itself depends on it.
//!
//! Only the stable C API of `sd-journal.h` is used (symbols of
//! `LIBSYSTEMD_209` and older, unchanged since 2014), so any libsystemd0
//! a distribution ships will do.
//!
//! # Soundness
//!
//! Every `unsafe` block here rests on three facts:
//!
//! 1. each function pointer is the `dlsym` of the symbol of that name in
//!    `libsystemd.so.0`, called with the exact C signature that
//!    `sd-journal.h` declares (`c_int` results, `*mut SdJournal` handles,
//!    `size_t` lengths), and the library is never closed, so the pointers
//!    stay valid for the life of the process;
//! 2. a [`Journal`] owns its `sd_journal *` from a successful open until
//!    `sd_journal_close` in `Drop`, and is neither `Send` nor `Sync` (the
//!    raw pointer sees to that): `sd-journal` objects must stay on the
//!    thread that made them;
//! 3. the data pointers `sd_journal_enumerate_data` returns are valid until
//!    the next call on the same handle: they are read only inside
//!    [`Journal::for_each_field`], which holds `&mut self`, so no other
//!    call can happen while the slice lives.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// `sd_journal`, opaque.
#[repr(C)]
struct SdJournal {
    _private: [u8; 0],
}

type Handle = *mut SdJournal;

/// The signatures of `sd-journal.h` that the functions used have.
type Open = unsafe extern "C" fn(*mut Handle, c_int) -> c_int;
type OpenDirectory = unsafe extern "C" fn(*mut Handle, *const c_char, c_int) -> c_int;
type Void = unsafe extern "C" fn(Handle);
type Call = unsafe extern "C" fn(Handle) -> c_int;
type AddMatch = unsafe extern "C" fn(Handle, *const c_void, usize) -> c_int;
type WithCursor = unsafe extern "C" fn(Handle, *const c_char) -> c_int;
type GetCursor = unsafe extern "C" fn(Handle, *mut *mut c_char) -> c_int;
type GetU64 = unsafe extern "C" fn(Handle, *mut u64) -> c_int;
type SetSize = unsafe extern "C" fn(Handle, usize) -> c_int;
type Enumerate = unsafe extern "C" fn(Handle, *mut *const c_void, *mut usize) -> c_int;

/// The functions used.
struct Api {
    open: Open,
    open_directory: OpenDirectory,
    close: Void,
    add_match: AddMatch,
    add_disjunction: Call,
    next: Call,
    previous: Call,
    seek_head: Call,
    seek_tail: Call,
    seek_cursor: WithCursor,
    test_cursor: WithCursor,
    get_cursor: GetCursor,
    get_realtime_usec: GetU64,
    set_data_threshold: SetSize,
    restart_data: Void,
    enumerate_data: Enumerate,
    get_fd: Call,
    process: Call,
}

const LIBRARY: &CStr = c"libsystemd.so.0";

fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// The last `dlerror`, as text.
fn dl_error() -> String {
    // SAFETY: dlerror takes no arguments; the string it returns (if any) is
    // valid until the next dl* call on this thread, and is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated (dlerror's contract).
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn load() -> Result<Api, String> {
    // SAFETY: a NUL-terminated name; libsystemd's initialisers are safe to
    // run at any time (it is loaded into every systemd service's clients).
    let lib = unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return Err(format!(
            "the journal is read with libsystemd.so.0 (package libsystemd0), which cannot be loaded: {}",
            dl_error()
        ));
    }
    let sym = |name: &CStr| -> Result<*mut c_void, String> {
        // SAFETY: `lib` is a live handle (never closed); `name` is
        // NUL-terminated.
        let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
        if p.is_null() {
            Err(format!(
                "libsystemd.so.0 has no {}: {}",
                name.to_string_lossy(),
                dl_error()
            ))
        } else {
            Ok(p)
        }
    };
    // SAFETY (every transmute below): the symbol of that name is the
    // function with the C signature written in `Api` (fact 1 of the module
    // doc); a data pointer to a function and a function pointer have the
    // same size and representation on every platform with dlsym.
    macro_rules! f {
        ($name:literal, $t:ty) => {
            unsafe { std::mem::transmute::<*mut c_void, $t>(sym($name)?) }
        };
    }
    Ok(Api {
        open: f!(c"sd_journal_open", Open),
        open_directory: f!(c"sd_journal_open_directory", OpenDirectory),
        close: f!(c"sd_journal_close", Void),
        add_match: f!(c"sd_journal_add_match", AddMatch),
        add_disjunction: f!(c"sd_journal_add_disjunction", Call),
        next: f!(c"sd_journal_next", Call),
        previous: f!(c"sd_journal_previous", Call),
        seek_head: f!(c"sd_journal_seek_head", Call),
        seek_tail: f!(c"sd_journal_seek_tail", Call),
        seek_cursor: f!(c"sd_journal_seek_cursor", WithCursor),
        test_cursor: f!(c"sd_journal_test_cursor", WithCursor),
        get_cursor: f!(c"sd_journal_get_cursor", GetCursor),
        get_realtime_usec: f!(c"sd_journal_get_realtime_usec", GetU64),
        set_data_threshold: f!(c"sd_journal_set_data_threshold", SetSize),
        restart_data: f!(c"sd_journal_restart_data", Void),
        enumerate_data: f!(c"sd_journal_enumerate_data", Enumerate),
        get_fd: f!(c"sd_journal_get_fd", Call),
        process: f!(c"sd_journal_process", Call),
    })
}

/// A negative errno result as an error naming the call.
fn check(what: &str, r: c_int) -> io::Result<c_int> {
    if r < 0 {
        let e = io::Error::from_raw_os_error(-r);
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

/// An open journal: the system's (every journal file on the host, as
/// `journalctl --merge` reads), or the files of one directory.
pub struct Journal {
    api: &'static Api,
    j: Handle,
}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: `j` came from a successful open and is closed once.
        unsafe { (self.api.close)(self.j) }
    }
}

impl Journal {
    pub fn open(directory: Option<&Path>) -> io::Result<Journal> {
        let api = api().map_err(io::Error::other)?;
        let mut j: Handle = std::ptr::null_mut();
        let (r, what) = match directory {
            Some(dir) => {
                let c = CString::new(dir.as_os_str().as_bytes())
                    .map_err(|_| io::Error::other("a journal directory with a NUL byte"))?;
                // SAFETY: `j` is a valid out-pointer, `c` NUL-terminated.
                let r = unsafe { (api.open_directory)(&mut j, c.as_ptr(), 0) };
                (r, format!("opening the journal in {}", dir.display()))
            }
            // Flags 0: not local-only (see `JournalOptions` on why every
            // file on the host).
            // SAFETY: `j` is a valid out-pointer.
            None => (
                unsafe { (api.open)(&mut j, 0) },
                "opening the journal".into(),
            ),
        };
        check(&what, r)?;
        if j.is_null() {
            return Err(io::Error::other("opening the journal gave no handle"));
        }
        Ok(Journal { api, j })
    }

    /// `FIELD=value` narrows what is read (the same field given twice:
    /// either value).
    pub fn add_match(&mut self, m: &[u8]) -> io::Result<()> {
        // SAFETY: a live handle; `m` is valid for `m.len()` bytes.
        let r = unsafe { (self.api.add_match)(self.j, m.as_ptr().cast(), m.len()) };
        check("adding a journal match", r).map(drop)
    }

    /// `+`: what follows is an alternative to the matches before.
    pub fn add_disjunction(&mut self) -> io::Result<()> {
        // SAFETY: a live handle.
        check("adding a journal disjunction", unsafe {
            (self.api.add_disjunction)(self.j)
        })
        .map(drop)
    }

    /// Field values longer than this may be cut to it (saves decompressing
    /// what the line cuts off anyway).
    pub fn set_data_threshold(&mut self, bytes: usize) -> io::Result<()> {
        // SAFETY: a live handle.
        check("setting the data threshold", unsafe {
            (self.api.set_data_threshold)(self.j, bytes)
        })
        .map(drop)
    }

    /// Moves to the next entry: false at the end, for now.
    pub fn next(&mut self) -> io::Result<bool> {
        // SAFETY: a live handle.
        check("reading the journal", unsafe { (self.api.next)(self.j) }).map(|r| r > 0)
    }

    pub fn previous(&mut self) -> io::Result<bool> {
        // SAFETY: a live handle.
        check("reading the journal backwards", unsafe {
            (self.api.previous)(self.j)
        })
        .map(|r| r > 0)
    }

    pub fn seek_head(&mut self) -> io::Result<()> {
        // SAFETY: a live handle.
        check("seeking the oldest entry", unsafe {
            (self.api.seek_head)(self.j)
        })
        .map(drop)
    }

    pub fn seek_tail(&mut self) -> io::Result<()> {
        // SAFETY: a live handle.
        check("seeking the newest entry", unsafe {
            (self.api.seek_tail)(self.j)
        })
        .map(drop)
    }

    /// Places reading at `cursor`, or where it would be if its entry is
    /// gone; the next [`Journal::next`] reads it (or what comes after).
    pub fn seek_cursor(&mut self, cursor: &str) -> io::Result<()> {
        let c = CString::new(cursor).map_err(|_| io::Error::other("a cursor with a NUL byte"))?;
        // SAFETY: a live handle, a NUL-terminated string.
        check("seeking the cursor", unsafe {
            (self.api.seek_cursor)(self.j, c.as_ptr())
        })
        .map(drop)
    }

    /// Whether the current entry is the one `cursor` names.
    pub fn test_cursor(&mut self, cursor: &str) -> io::Result<bool> {
        let Ok(c) = CString::new(cursor) else {
            return Ok(false);
        };
        // SAFETY: a live handle, a NUL-terminated string.
        check("testing the cursor", unsafe {
            (self.api.test_cursor)(self.j, c.as_ptr())
        })
        .map(|r| r > 0)
    }

    /// The current entry's cursor.
    pub fn cursor(&mut self) -> io::Result<String> {
        let mut c: *mut c_char = std::ptr::null_mut();
        // SAFETY: a live handle and a valid out-pointer.
        check("getting the cursor", unsafe {
            (self.api.get_cursor)(self.j, &mut c)
        })?;
        if c.is_null() {
            return Err(io::Error::other("the journal gave no cursor"));
        }
        // SAFETY: on success `c` is a NUL-terminated string that we own,
        // allocated with malloc (sd_journal_get_cursor's contract): copied,
        // then freed once.
        let text = unsafe { CStr::from_ptr(c) }.to_string_lossy().into_owned();
        unsafe { libc::free(c.cast()) };
        Ok(text)
    }

    /// The current entry's wall-clock time, in microseconds since the epoch.
    pub fn realtime_usec(&mut self) -> io::Result<u64> {
        let mut t = 0u64;
        // SAFETY: a live handle and a valid out-pointer.
        check("getting the entry's time", unsafe {
            (self.api.get_realtime_usec)(self.j, &mut t)
        })?;
        Ok(t)
    }

    /// Calls `f` with each `FIELD=value` of the current entry, in the
    /// order stored.
    pub fn for_each_field(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        // SAFETY: a live handle.
        unsafe { (self.api.restart_data)(self.j) };
        loop {
            let mut data: *const c_void = std::ptr::null();
            let mut len = 0usize;
            // SAFETY: a live handle and valid out-pointers.
            let r = unsafe { (self.api.enumerate_data)(self.j, &mut data, &mut len) };
            if check("reading an entry's fields", r)? == 0 {
                return Ok(());
            }
            if data.is_null() {
                continue;
            }
            // SAFETY: on success `data` points at `len` readable bytes,
            // valid until the next call on this handle (fact 3 of the
            // module doc): the slice does not outlive this iteration.
            f(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) });
        }
    }

    /// The descriptor that becomes readable when the journal changes; set
    /// up at open, so that nothing written after the first read is missed.
    pub fn fd(&mut self) -> io::Result<RawFd> {
        // SAFETY: a live handle.
        check("watching the journal", unsafe { (self.api.get_fd)(self.j) })
    }

    /// Takes in what changed after [`Journal::fd`] became readable.
    pub fn process(&mut self) -> io::Result<()> {
        // SAFETY: a live handle.
        check("following the journal", unsafe {
            (self.api.process)(self.j)
        })
        .map(drop)
    }
}

impl Journal {
    /// Waits until the journal changes, `stop` becomes readable, or
    /// `timeout` passes, then takes in what changed. True if `stop` did.
    pub fn wait(&mut self, stop: RawFd, timeout: std::time::Duration) -> io::Result<bool> {
        let fd = self.fd()?;
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `fds` is an array of two initialised pollfd that outlives
        // the call; its length is passed as the count.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if fds[1].revents != 0 {
            return Ok(true);
        }
        self.process()?;
        Ok(false)
    }
}

/// Whether the journal can be read on this machine: `Err` says why not.
pub fn available() -> Result<(), String> {
    api().map(drop)
}
