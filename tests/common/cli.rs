//! The built binary's commands, as a sysadmin types them.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Variables of the environment running the tests (a CI job may itself run
/// under systemd) that would change what the binary does.
const SYSTEMD_ENV: [&str; 7] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "RUST_LOG",
    "CANHGAC_LOG",
    "NO_COLOR",
];

/// `canhgac`, in UTC, free of the test runner's systemd and log settings.
pub fn command() -> Command {
    let mut cmd = Command::new(super::BIN);
    for var in SYSTEMD_ENV {
        cmd.env_remove(var);
    }
    cmd.env("TZ", "UTC");
    cmd
}

/// [`command`] for `assert_cmd`'s assertions.
pub fn assert_cmd() -> assert_cmd::Command {
    assert_cmd::Command::from_std(command())
}

/// `canhgac ARGS`: success, stdout (which must be UTF-8), stderr.
pub fn run<I, S>(args: I) -> (bool, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = command().args(args).output().expect("canhgac runs");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cmd`, which must succeed (a failure panics with what it printed
/// on stderr and stdout); what it printed on stdout.
pub fn succeed(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?} runs: {e}", cmd.get_program()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?} failed ({}):\n{}{stdout}",
        cmd.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `canhgac check --config CONFIG`.
pub fn check(config: &Path) -> Output {
    command()
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("canhgac check runs")
}

/// [`check`], which must pass; what it printed on stdout.
pub fn check_passes(config: &Path) -> String {
    succeed(command().args(["check", "--config"]).arg(config))
}

/// One JSON value a line, as `scan --events` and `integrity status
/// --format json` print them; the output must be UTF-8.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    std::str::from_utf8(stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect()
}

/// A JSON array printed by `--format json`.
pub fn list(json: &[u8]) -> Option<Vec<Value>> {
    serde_json::from_slice::<Value>(json)
        .ok()
        .and_then(|v| v.as_array().cloned())
}

/// The incidents of `scan --format json ARGS`, and what it said on stderr;
/// the scan must succeed.
pub fn scan<I, S>(args: I) -> (Vec<Value>, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = command()
        .args(["scan", "--format", "json"])
        .args(args)
        .output()
        .expect("scan runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "scan failed: {stderr}");
    (list(&out.stdout).expect("JSON incidents"), stderr)
}

/// [`scan`] of `files` with the rules and settings of `config`.
pub fn scan_with_config(config: &Path, files: &[&Path]) -> Vec<Value> {
    let mut args = vec![OsStr::new("--config"), config.as_os_str()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    scan(args).0
}

/// The stored incidents of `config`, through `canhgac incidents --format
/// json`, or what it said when it failed (no store yet).
pub fn try_incidents(config: &Path) -> Result<Vec<Value>, String> {
    let out = command()
        .args([
            "incidents",
            "--oldest-first",
            "--format",
            "json",
            "--config",
        ])
        .arg(config)
        .output()
        .expect("canhgac incidents runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(list(&out.stdout).expect("incidents JSON"))
}

/// [`try_incidents`], none while there is no store.
pub fn incidents(config: &Path) -> Vec<Value> {
    try_incidents(config).unwrap_or_default()
}

/// Events per `"rule" "key"`, summed over a key's incidents.
pub fn events_by_key(incidents: &[Value]) -> std::collections::BTreeMap<String, u64> {
    let mut by_key = std::collections::BTreeMap::new();
    for i in incidents {
        *by_key
            .entry(format!("{} {}", i["rule"], i["key"]))
            .or_insert(0) += i["events"].as_u64().unwrap_or(0);
    }
    by_key
}
