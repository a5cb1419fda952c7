//! HTTP as a client of the daemon or of Prometheus: GET over loopback.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// A response: status, `WWW-Authenticate`, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub challenge: Option<String>,
    pub body: String,
}

/// A client that hands back every status (a 401 is an answer to check, not
/// an error), trusting only `root` (DER) if given.
pub fn agent(root: Option<&[u8]>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)));
    if let Some(der) = root {
        let root = ureq::tls::Certificate::from_der(der).to_owned();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root])))
                .build(),
        );
    }
    config.build().into()
}

/// GET `url` with an `Authorization` header if given.
pub fn get(
    agent: &ureq::Agent,
    url: &str,
    authorization: Option<&str>,
) -> Result<Reply, ureq::Error> {
    let mut request = agent.get(url);
    if let Some(a) = authorization {
        request = request.header("Authorization", a);
    }
    reply(request.call()?)
}

/// POST `body` (JSON) to `url` with an `Authorization` header if given.
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    authorization: Option<&str>,
    body: &str,
) -> Result<Reply, ureq::Error> {
    let mut request = agent.post(url).header("Content-Type", "application/json");
    if let Some(a) = authorization {
        request = request.header("Authorization", a);
    }
    reply(request.send(body)?)
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> Result<Reply, ureq::Error> {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.body_mut().read_to_string()?;
    Ok(Reply {
        status,
        challenge,
        body,
    })
}

/// Percent-encoding for a query string value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
