//! Loading a whole config, and the helpers the rooms' tests share.

use super::*;

/// The errors as `check` prints them.
pub(super) fn messages(loaded: Result<Config, ConfigErrors>) -> Result<Config, Vec<String>> {
    loaded.map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

pub(super) fn parse(text: &str) -> Result<Config, Vec<String>> {
    messages(Config::parse(Path::new("/etc/canhgac/canhgac.toml"), text))
}

/// Exactly the `expected` errors (each given by its start), in any order.
pub(super) fn assert_errors(errors: &[String], expected: &[&str]) {
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errors:#?}"
        );
    }
}

pub(super) const MINIMAL: &str = r#"agency = "so-tttt-hanoi"

[[input]]
name = "auth"
path = "/var/log/auth.log"
type = "syslog"
"#;

#[test]
fn minimal_config_takes_defaults() {
    let c = parse(MINIMAL).expect("valid");
    assert_eq!(c.agency, "so-tttt-hanoi");
    assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert!(c.rules.builtin);
    assert_eq!(c.pipeline, PipelineConfig::default());
    assert_eq!(
        c.inputs,
        vec![InputConfig {
            name: "auth".into(),
            input_type: "syslog".into(),
            source: SourceConfig::Files {
                path: "/var/log/auth.log".into(),
                start_at_end: true,
            },
            unless_exists: None,
            at: crate::position::At(crate::position::Position {
                file: String::new(),
                line: 0,
                column: 0,
            }),
        }]
    );
    assert_eq!(c.db_path(), PathBuf::from("/var/lib/canhgac/canhgac.db"));
}

#[test]
fn relative_paths_are_anchored_at_the_config_file() {
    let c = Config::parse(
        Path::new("demo/canhgac.toml"),
        &format!("{MINIMAL}\n[rules]\ndirs = [\"rules.d\"]\n")
            .replace("/var/log/auth.log", "logs/*.log")
            .replace("agency", "state_dir = \"state\"\nagency"),
    )
    .expect("valid");
    assert_eq!(c.state_dir, PathBuf::from("demo/state"));
    assert_eq!(c.rules.paths, vec![PathBuf::from("demo/rules.d")]);
    assert_eq!(
        c.inputs[0].source,
        SourceConfig::Files {
            path: "demo/logs/*.log".into(),
            start_at_end: true
        }
    );
}

#[test]
fn every_error_names_file_line_column() {
    let text = r#"agency = "Bộ TT"
time_zone = "Asia/Hanoi_City"

[http]
listen = "localhost"

[pipeline]
batch_interval = "50s"
max_keys = 0

[[input]]
name = "auth"
path = "/var/log/auth.log"
type = "syslog"
start = "middle"

[[input]]
name = "auth"
path = "/var/log/nginx/*.log"
type = "evtx"
"#;
    let errors = parse(text).expect_err("invalid");
    let expected = [
        "/etc/canhgac/canhgac.toml:1:10: agency id",
        "/etc/canhgac/canhgac.toml:2:13: unknown time zone",
        "/etc/canhgac/canhgac.toml:5:10: listen address",
        "/etc/canhgac/canhgac.toml:9:12: max_keys 0",
        "/etc/canhgac/canhgac.toml:8:18: batch_interval: at most 10s",
        "/etc/canhgac/canhgac.toml:15:9: start \"middle\"",
        "/etc/canhgac/canhgac.toml:18:8: input name \"auth\" used twice (first at /etc/canhgac/canhgac.toml:12:8)",
        "/etc/canhgac/canhgac.toml:20:8: unknown input type \"evtx\"",
    ];
    assert_errors(&errors, &expected);
}

#[test]
fn unknown_keys_and_syntax_errors_are_positioned() {
    let errors = parse(&format!("{MINIMAL}colour = \"red\"\n")).expect_err("unknown key");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("/etc/canhgac/canhgac.toml:7:1: unknown field `colour`"),
        "{errors:?}"
    );
    let errors = parse("agency = \"x\"\n[[input]\n").expect_err("syntax");
    assert!(
        errors[0].starts_with("/etc/canhgac/canhgac.toml:2:"),
        "{errors:?}"
    );
    let errors = parse("agency = \"x\"\n").expect_err("no inputs");
    assert!(errors[0].contains("no [[input]]"), "{errors:?}");
}

#[test]
fn an_unset_agency_is_refused_with_what_to_write() {
    let errors = parse(&MINIMAL.replace("so-tttt-hanoi", "")).expect_err("empty agency");
    assert_errors(
        &errors,
        &["/etc/canhgac/canhgac.toml:1:10: agency is not set"],
    );
    assert!(errors[0].contains("so-tttt-hanoi"), "{errors:?}");
}

#[test]
fn a_journal_input_is_left_out_while_its_file_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |file: &str| {
        format!(
            "agency = \"a\"\n[[input]]\nname = \"auth-journal\"\ntype = \"journal\"\nunless_exists = \"{}\"\n",
            dir.path().join(file).display()
        )
    };
    std::fs::write(dir.path().join("auth.log"), "").expect("write");
    let c = parse(&config("auth.log")).expect("valid");
    assert!(c.inputs.is_empty(), "{:?}", c.inputs);
    assert_eq!(
        c.inputs_left_out,
        vec![("auth-journal".to_owned(), dir.path().join("auth.log"))]
    );
    let c = parse(&config("missing.log")).expect("valid");
    assert_eq!(c.inputs.len(), 1);
    assert!(c.inputs_left_out.is_empty());

    let errors = parse(&format!("{MINIMAL}unless_exists = \"/var/log/auth.log\"\n"))
        .expect_err("files do not take it");
    assert_errors(
        &errors,
        &["/etc/canhgac/canhgac.toml:7:17: unless_exists is not read by inputs of type \"syslog\""],
    );
}

#[test]
fn a_udp_receiver_asks_for_a_receive_buffer_that_tcp_does_not_take() {
    let receiver = |kind: &str, extra: &str| {
        format!("agency = \"a\"\n[[input]]\nname = \"net\"\ntype = \"{kind}\"\nlisten = \"127.0.0.1:5514\"\n{extra}")
    };
    let buffer = |c: &Config| match &c.inputs[0].source {
        SourceConfig::Syslog { receive_buffer, .. } => *receive_buffer,
        other => panic!("not a receiver: {other:?}"),
    };
    let c = parse(&receiver("syslog-udp", "")).expect("valid");
    assert_eq!(buffer(&c), 8 << 20);
    let c = parse(&receiver("syslog-udp", "receive_buffer_bytes = 262144\n")).expect("valid");
    assert_eq!(buffer(&c), 262_144);

    let errors = parse(&receiver("syslog-udp", "receive_buffer_bytes = 4096\n"))
        .expect_err("below the least");
    assert_errors(
        &errors,
        &["/etc/canhgac/canhgac.toml:6:24: receive_buffer_bytes 4096: must be between 65536 and 1073741824"],
    );
    let errors = parse(&receiver("syslog-tcp", "receive_buffer_bytes = 262144\n"))
        .expect_err("TCP has flow control instead");
    assert_errors(
        &errors,
        &["/etc/canhgac/canhgac.toml:6:24: receive_buffer_bytes is not read by inputs of type \"syslog-tcp\""],
    );
}
