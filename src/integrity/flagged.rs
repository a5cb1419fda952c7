//! The URL paths of scripts the integrity watcher has flagged (new or
//! changed outside a deploy, not accepted): what the `web-flagged-script-access`
//! rule checks the requested path of a successful request against.
//!
//! The watcher replaces a web root's set after every change of its flags;
//! the pipeline's rule check reads it. A path is mapped to a URL as the web
//! root's `url_prefix` followed by the path relative to the root.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

#[derive(Clone, Default)]
pub struct FlaggedScripts {
    /// Per web root, so one root's update replaces only its own paths.
    inner: Arc<RwLock<HashMap<String, HashSet<Vec<u8>>>>>,
}

impl FlaggedScripts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `urls` the flagged script URLs of `root`.
    pub fn replace(&self, root: &str, urls: HashSet<Vec<u8>>) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if urls.is_empty() {
            map.remove(root);
        } else {
            map.insert(root.to_owned(), urls);
        }
    }

    /// Whether the request target `target` (as written in an access log:
    /// percent-encoded, perhaps with a query) names a flagged script.
    pub fn contains_target(&self, target: &str) -> bool {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return false;
        }
        let path = normalize(target);
        map.values().any(|set| set.contains(&path))
    }

    pub fn len(&self) -> usize {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The URL of `rel` (relative to the web root) under `url_prefix`.
pub fn url_of(url_prefix: &str, rel: &[u8]) -> Vec<u8> {
    let mut url = url_prefix.trim_end_matches('/').as_bytes().to_vec();
    url.push(b'/');
    url.extend_from_slice(rel);
    url
}

/// A request target as the server resolves it to a file: without query or
/// fragment, percent-decoded, with `//`, `/./` and `/../` resolved, so
/// `/up%6Coads//./x.php?a=1` is `/uploads/x.php`.
pub fn normalize(target: &str) -> Vec<u8> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                decoded.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in decoded.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_normalized_like_a_server_would() {
        assert_eq!(normalize("/up%6Coads//./x.php?a=1#f"), b"/uploads/x.php");
        assert_eq!(normalize("/a/../uploads/x.php"), b"/uploads/x.php");
        assert_eq!(normalize("/../../x"), b"/x");
        assert_eq!(normalize("/bad%zzescape%4"), b"/bad%zzescape%4");
        assert_eq!(normalize(""), b"/");
        assert_eq!(url_of("/", b"uploads/x.php"), b"/uploads/x.php");
        assert_eq!(url_of("/portal/", b"x.php"), b"/portal/x.php");
    }

    #[test]
    fn roots_replace_their_own_paths() {
        let f = FlaggedScripts::new();
        assert!(!f.contains_target("/uploads/x.php"));
        f.replace("a", [b"/uploads/x.php".to_vec()].into_iter().collect());
        f.replace("b", [b"/b.php".to_vec()].into_iter().collect());
        assert!(f.contains_target("/uploads/x.php?cmd=id"));
        assert!(f.contains_target("/uploads/%78.php"));
        assert_eq!(f.len(), 2);
        f.replace("a", HashSet::new());
        assert!(!f.contains_target("/uploads/x.php"));
        assert!(f.contains_target("/b.php"));
    }
}
