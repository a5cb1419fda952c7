//! Request-rate rules: two numbers per client (this fixed window's count
//! and the last one's), so a flood of requests costs no memory per request.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::Detector;

/// One client's requests for a request-rate rule: the counts of the
/// current fixed window (`slot`, of the rule's length) and the one before,
/// whose weighted sum estimates the sliding window (the estimate rate
/// limiters use: two numbers a client, whatever the rate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateCount {
    slot: i64,
    current: u64,
    previous: u64,
}

impl Detector {
    /// Counts one request of `client` for the request-rate rule `rule`
    /// (`count` requests within `window`). Returns the attempts of an event
    /// to observe when the client has reached `count` (`count`: the
    /// requests it stands for), and starts counting afresh. Cheap: it runs
    /// on every access-log line.
    pub fn count_request(
        &mut self,
        rule: usize,
        client: std::net::IpAddr,
        time: Timestamp,
        count: u32,
        window: SignedDuration,
    ) -> Option<u64> {
        // Nanoseconds fit an i64 until 2262; beyond, the window's clamped.
        let width = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX).max(1);
        let at = i64::try_from(time.as_nanosecond()).unwrap_or(i64::MAX);
        let slot = at.div_euclid(width);
        if self.rates.len() <= rule {
            self.rates.resize_with(rule + 1, hashbrown::HashMap::new);
        }
        let client = address_bits(client);
        if self.rate_clients >= self.max_keys
            && !self.rates[rule].contains_key(&client)
            && !self.forget_idle_rates(rule, slot)
        {
            // Every tracked client is active: this one is not counted.
            self.dropped_events += 1;
            return None;
        }
        if self.tracking {
            self.dirty_rates.insert((rule, client));
        }
        let c = match self.rates[rule].entry(client) {
            hashbrown::hash_map::Entry::Occupied(o) => o.into_mut(),
            hashbrown::hash_map::Entry::Vacant(v) => {
                self.rate_clients += 1;
                self.no_idle_rates.clear();
                v.insert(RateCount::default())
            }
        };
        match slot - c.slot {
            0 => c.current += 1,
            1 => {
                c.previous = c.current;
                c.current = 1;
            }
            // Out of order (several files): counted in its window.
            d if d < 0 => {}
            _ => {
                c.previous = 0;
                c.current = 1;
            }
        }
        c.slot = c.slot.max(slot);
        if c.previous + c.current < u64::from(count) {
            // Cannot reach the rate whatever the weighting: the usual case.
            return None;
        }
        let into = (at - slot * width) as f64 / width as f64;
        let estimate = c.previous as f64 * (1.0 - into) + c.current as f64;
        if estimate >= f64::from(count) {
            c.previous = 0;
            c.current = 0;
            return Some(u64::from(count));
        }
        None
    }

    /// Forgets clients whose counts are older than the window before
    /// `slot` of `rule` (they estimate zero); whether any went.
    fn forget_idle_rates(&mut self, rule: usize, slot: i64) -> bool {
        if self
            .no_idle_rates
            .get(rule)
            .copied()
            .flatten()
            .is_some_and(|none_at| slot <= none_at)
        {
            return false;
        }
        let before = self.rate_clients;
        for (rule, map) in self.rates.iter_mut().enumerate() {
            map.retain(|&client, c| {
                let keep = c.slot >= slot - 1;
                if !keep && self.tracking {
                    self.dirty_rates.insert((rule, client));
                }
                keep
            });
        }
        self.rate_clients = self.rates.iter().map(hashbrown::HashMap::len).sum();
        let forgot = self.rate_clients < before;
        if !forgot {
            if self.no_idle_rates.len() <= rule {
                self.no_idle_rates.resize(rule + 1, None);
            }
            self.no_idle_rates[rule] = Some(slot);
        }
        forgot
    }

    /// Clients tracked by request-rate rules.
    pub fn rate_clients(&self) -> usize {
        self.rate_clients
    }
}

/// An address as one number: IPv6 bits, IPv4 as IPv4-mapped IPv6.
pub(super) fn address_bits(addr: std::net::IpAddr) -> u128 {
    match addr {
        std::net::IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A request-rate client's address as text, as [`address_bits`] took it.
pub(super) fn client_text(bits: u128) -> String {
    std::net::Ipv6Addr::from(bits).to_canonical().to_string()
}
