//! `[integrity]` and `[[webroot]]`: which web roots are watched for
//! changed files, what in them is selected, and when changes are expected
//! (deploy windows and markers).

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::validator::{Section, Validator};
use super::RawConfig;
use crate::integrity::settings::{IntegrityConfig, WebRootConfig};

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntegrity {
    debounce: Option<Spanned<String>>,
    max_burst: Option<Spanned<String>>,
    rescan_interval: Option<Spanned<String>>,
    max_file_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    signatures: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebRoot {
    name: Spanned<String>,
    path: Spanned<String>,
    include: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    upload_dirs: Option<Spanned<Vec<String>>>,
    index_names: Option<Vec<String>>,
    script_extensions: Option<Vec<String>>,
    url_prefix: Option<Spanned<String>>,
    deploy_marker: Option<Spanned<String>>,
    #[serde(default)]
    deploy_windows: Vec<Spanned<String>>,
}

impl Validator<'_> {
    /// `[integrity]` and `[[webroot]]`. Web root names share the namespace
    /// of input names: incidents name either in their `input`.
    pub(super) fn integrity(
        &mut self,
        raw: &RawConfig,
        input_names: &HashMap<String, Range<usize>>,
    ) -> IntegrityConfig {
        use crate::integrity::deploy::{Deploy, DeployWindow};
        use crate::integrity::select::{self, Classifier, Selection, Signatures};
        let d = IntegrityConfig::default();
        let r = &raw.integrity;
        let debounce = self.duration(&r.debounce, d.debounce, Duration::from_secs(60), "debounce");
        let max_burst = self.duration(
            &r.max_burst,
            d.max_burst,
            Duration::from_secs(3600),
            "max_burst",
        );
        let rescan_interval = self.duration(
            &r.rescan_interval,
            d.rescan_interval,
            Duration::from_secs(7 * 86_400),
            "rescan_interval",
        );
        let max_file_bytes = match &r.max_file_bytes {
            Some(v) if *v.get_ref() == 0 => {
                self.error(&v.span(), "max_file_bytes: must be at least 1".into());
                d.max_file_bytes
            }
            Some(v) => *v.get_ref(),
            None => d.max_file_bytes,
        };
        let mut signatures = Vec::new();
        for sig in &r.signatures {
            match Signatures::new(std::slice::from_ref(sig.get_ref())) {
                Ok(_) => signatures.push(sig.get_ref().clone()),
                Err(e) => self.error(&sig.span(), e),
            }
        }
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut roots = Vec::new();
        // One namespace: a web root may reuse neither another web root's
        // name nor an input's.
        let mut names = input_names.clone();
        for root in &raw.webroots {
            let root = root.get_ref();
            let name = root.name.get_ref();
            self.name(Section::WebRoot, &root.name, &mut names);
            let path = self.resolve(root.path.get_ref());
            let include = root
                .include
                .as_ref()
                .map_or_else(Vec::new, |v| v.get_ref().clone());
            let exclude = root
                .exclude
                .as_ref()
                .map_or_else(Vec::new, |v| v.get_ref().clone());
            if let Err(e) = Selection::new(&include, &exclude) {
                let which = if e.starts_with("include") {
                    &root.include
                } else {
                    &root.exclude
                };
                let span = which.as_ref().map_or(root.name.span(), Spanned::span);
                self.error(&span, e);
            }
            let upload_dirs = root.upload_dirs.as_ref().map_or_else(
                || strings(select::DEFAULT_UPLOAD_DIRS),
                |u| u.get_ref().clone(),
            );
            let index_names = root
                .index_names
                .clone()
                .unwrap_or_else(|| strings(select::DEFAULT_INDEX_NAMES));
            let script_extensions = root
                .script_extensions
                .clone()
                .unwrap_or_else(|| strings(select::DEFAULT_SCRIPT_EXTENSIONS));
            if let Err(e) = Classifier::new(&upload_dirs, &index_names, &script_extensions) {
                let span = root
                    .upload_dirs
                    .as_ref()
                    .map_or(root.name.span(), Spanned::span);
                self.error(&span, e);
            }
            let url_prefix = match &root.url_prefix {
                Some(u) if !u.get_ref().starts_with('/') => {
                    self.error(
                        &u.span(),
                        format!("url_prefix {:?}: must start with '/'", u.get_ref()),
                    );
                    "/".to_owned()
                }
                Some(u) => u.get_ref().clone(),
                None => "/".to_owned(),
            };
            let mut windows = Vec::new();
            for w in &root.deploy_windows {
                match DeployWindow::parse(w.get_ref()) {
                    Ok(w) => windows.push(w),
                    Err(e) => self.error(&w.span(), e),
                }
            }
            let marker = self.resolve_optional(&root.deploy_marker);
            roots.push(WebRootConfig {
                name: name.clone(),
                path,
                include,
                exclude,
                upload_dirs,
                index_names,
                script_extensions,
                url_prefix,
                deploy: Deploy { windows, marker },
            });
        }
        IntegrityConfig {
            debounce,
            max_burst,
            rescan_interval,
            max_file_bytes,
            signatures,
            roots,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::tests::{parse, MINIMAL};

    #[test]
    fn web_roots_and_their_errors() {
        let c = parse(&format!(
            "{MINIMAL}\n[integrity]\ndebounce = \"500ms\"\n\n[[webroot]]\nname = \"portal\"\npath = \"/var/www/portal\"\nexclude = [\"cache/**\"]\ndeploy_marker = \"/var/www/.deploying\"\ndeploy_windows = [\"Sat 22:00-02:00\"]\n"
        ))
        .expect("valid");
        assert_eq!(c.integrity.debounce, Duration::from_millis(500));
        let r = &c.integrity.roots[0];
        assert_eq!(r.path, PathBuf::from("/var/www/portal"));
        assert_eq!(r.exclude, ["cache/**"]);
        assert_eq!(r.url_prefix, "/");
        assert!(r.upload_dirs.iter().any(|u| u == "**/uploads"), "defaults");
        assert_eq!(r.deploy.windows.len(), 1);
        // A web root alone is enough to run.
        let only = "agency = \"a\"\n[[webroot]]\nname = \"w\"\npath = \"/srv/www\"\n";
        assert!(parse(only).is_ok());
        let errors = parse(&format!(
            "{MINIMAL}\n[[webroot]]\nname = \"auth\"\npath = \"/w\"\nexclude = [\"a/***\"]\nurl_prefix = \"x\"\ndeploy_windows = [\"Funday 01:00-02:00\"]\n[integrity]\nsignatures = [\"(unclosed\"]\n"
        ))
        .expect_err("invalid");
        for want in [
            ":9:8: web root name \"auth\" already used",
            ":11:11: exclude glob",
            ":12:14: url_prefix \"x\"",
            ":13:19: deploy window \"Funday",
            ":15:15: signature",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "missing {want:?} in {errors:#?}"
            );
        }
    }
}
