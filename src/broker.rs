//! The NATS side shared by an agency's forwarder and the center: how to
//! connect with the configured authentication and TLS, and what travels
//! on which subject.
//!
//! Incidents go to `<subject>.<agency>` with `Nats-Msg-Id` =
//! `<agency>/<uid>/<revision>`, so JetStream drops a second copy of one
//! revision inside its duplicate window, and the center, keeping the
//! highest revision per incident, drops any later copy. Heartbeats go to
//! `<heartbeat_subject>.<agency>`, into a stream of their own that keeps
//! each agency's last one, so a center that was down reads where every
//! agency stood.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{NatsAuth, NatsConfig};

/// The version of [`Heartbeat`]'s shape: fields are only added.
pub const HEARTBEAT_SCHEMA: u32 = 1;

/// What an agency says of itself every `[forward] heartbeat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub schema: u32,
    pub agency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// canhgac's version.
    pub version: String,
    /// The digest of the rules in force (as `canhgac_build_info`).
    pub rules_digest: String,
    /// Bytes written to the agency's inputs and not yet read.
    pub inputs_behind_bytes: u64,
    pub outbox_pending: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_oldest_us: Option<i64>,
    pub outbox_dropped: u64,
    pub sent_us: i64,
}

/// Connects to the first reachable server of `config`. `name` tells the
/// server's monitoring who this client is. Reconnection after a later
/// loss is the client's own (forever, with its backoff); a first
/// connection that fails returns the error, for the caller's backoff.
pub async fn connect(config: &NatsConfig, name: &str) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(10))
        .request_timeout(Some(Duration::from_secs(10)))
        .max_reconnects(None::<usize>);
    options = match &config.auth {
        NatsAuth::None => options,
        NatsAuth::Credentials(path) => options
            .credentials_file(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?,
        NatsAuth::NkeySeed(path) => options.nkey(read_secret(path)?),
        NatsAuth::UserPassword {
            user,
            password_file,
        } => options.user_and_password(user.clone(), read_secret(password_file)?),
        NatsAuth::Token(path) => options.token(read_secret(path)?),
    };
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &config.tls_client {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let servers = config
        .servers
        .iter()
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad server address: {e}"))?;
    options
        .connect(servers)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", config.servers.join(", ")))
}

/// The first line of a secret file, without its line end.
fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim();
    if secret.is_empty() {
        return Err(format!("{}: empty", path.display()));
    }
    Ok(secret.to_owned())
}

/// Delay before the `failures`-th retry in a row: 1 s doubling to a minute.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1_u64 << failures.min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute() {
        let secs: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
