//! Many agencies' forwarders as tasks of one process, for benches/center.sh.
//!
//! Each task is one agency: it publishes its incidents to
//! `canhgac.incidents.<agency>` exactly as `canhgac run`'s forwarder does
//! (the same JSON, `Nats-Msg-Id` = `<agency>/<uid>/<revision>`, a window
//! of publishes in flight, each acknowledged by JetStream), each incident
//! at `--revisions` successive revisions, with `committed_us` set the
//! moment it is handed to the client: the center measures its latency
//! from there. It stands in for the agencies' SQLite outboxes, which are
//! each agency's own cost, not the center's.
//!
//! ```text
//! cargo bench --bench center_load -- --server nats://127.0.0.1:4222 --agencies 1000 --incidents 100
//! ```
//! Prints one JSON object: messages, seconds, messages per second.

use std::time::Instant;

use async_nats::jetstream;
use canhgac::store::{IncidentMessage, MESSAGE_SCHEMA};

const CATEGORIES: [&str; 6] = [
    "bruteforce",
    "web-attack",
    "recon",
    "malware",
    "phishing",
    "deface",
];
const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

struct Args {
    server: String,
    agencies: usize,
    incidents: usize,
    revisions: u64,
    window: usize,
    /// Pause between an agency's publishes (0: as fast as acknowledged).
    interval_ms: u64,
    /// Agency ids are `<prefix>-NNNNN`.
    prefix: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        server: "nats://127.0.0.1:4222".into(),
        agencies: 1000,
        incidents: 100,
        revisions: 2,
        window: 32,
        interval_ms: 0,
        prefix: "agency".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--server" => a.server = value.clone(),
            "--agencies" => a.agencies = number()?,
            "--incidents" => a.incidents = number()?,
            "--revisions" => a.revisions = number()? as u64,
            "--window" => a.window = number()?.max(1),
            "--interval-ms" => a.interval_ms = number()? as u64,
            "--prefix" => a.prefix = value.clone(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

fn message(agency: &str, n: usize, revision: u64) -> IncidentMessage {
    let ip = format!("203.0.{}.{}", (n / 250) % 250, n % 250 + 1);
    IncidentMessage {
        schema: MESSAGE_SCHEMA,
        agency: agency.to_owned(),
        uid: format!("{agency}-{:08x}-{n:08}", n * 2_654_435_761 % 0xffff_ffff),
        revision,
        rule: "ssh-bruteforce".into(),
        category: CATEGORIES[n % CATEGORIES.len()].into(),
        severity: SEVERITIES[n % SEVERITIES.len()].into(),
        key: ip.clone(),
        src_ip: Some(ip.clone()),
        input: Some("auth".into()),
        first_seen_us: 1_790_000_000_000_000 + n as i64 * 1_000_000,
        last_seen_us: 1_790_000_000_000_000 + n as i64 * 1_000_000 + revision as i64 * 5_000_000,
        events: 5 * revision,
        open: true,
        status: "new".into(),
        status_changed_us: None,
        reported_us: None,
        sample: format!(
            "Dec  6 10:00:00 web1 sshd[4242]: Failed password for root from {ip} port 52144 ssh2"
        ),
        fields: serde_json::json!({"src_ip": ip, "user": "root"}),
        created_us: now_us(),
        committed_us: 0,
    }
}

async fn agency(js: jetstream::Context, id: String, nth: usize, a: &Args) -> Result<u64, String> {
    let subject = format!("canhgac.incidents.{id}");
    let pause = std::time::Duration::from_millis(a.interval_ms);
    if a.interval_ms > 0 {
        // Spread the agencies over one interval, as real ones are.
        let offset = a.interval_ms * (nth as u64 % 1000) / 1000;
        tokio::time::sleep(std::time::Duration::from_millis(offset)).await;
    }
    let mut in_flight = std::collections::VecDeque::new();
    let mut acked = 0;
    for revision in 1..=a.revisions {
        for n in 0..a.incidents {
            let mut m = message(&id, n, revision);
            m.committed_us = now_us();
            let payload = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(m.message_id());
            in_flight.push_back(
                js.send_publish(subject.clone(), publish)
                    .await
                    .map_err(|e| format!("{id}: publish: {e}"))?,
            );
            if a.interval_ms > 0 {
                tokio::time::sleep(pause).await;
            }
            if in_flight.len() >= a.window {
                if let Some(ack) = in_flight.pop_front() {
                    ack.await.map_err(|e| format!("{id}: ack: {e}"))?;
                    acked += 1;
                }
            }
        }
    }
    for ack in in_flight {
        ack.await.map_err(|e| format!("{id}: ack: {e}"))?;
        acked += 1;
    }
    Ok(acked)
}

fn main() -> Result<(), String> {
    let a = args()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        // One connection per 100 agencies: the broker sees many clients,
        // as it would, without a thousand sockets in one process.
        let mut contexts = Vec::new();
        for _ in 0..a.agencies.div_ceil(100) {
            let client = async_nats::connect(&a.server).await.map_err(|e| e.to_string())?;
            let mut js = jetstream::new(client);
            js.set_timeout(std::time::Duration::from_secs(60));
            contexts.push(js);
        }
        let started = Instant::now();
        let a = &a;
        let tasks = (0..a.agencies).map(|i| {
            let js = contexts[i / 100].clone();
            agency(js, format!("{}-{i:05}", a.prefix), i, a)
        });
        let results = futures_util::future::join_all(tasks).await;
        let seconds = started.elapsed().as_secs_f64();
        let mut messages = 0;
        for r in results {
            messages += r?;
        }
        println!(
            "{{\"agencies\": {}, \"messages\": {messages}, \"seconds\": {seconds:.3}, \"per_second\": {:.0}}}",
            a.agencies,
            messages as f64 / seconds
        );
        Ok(())
    })
}
