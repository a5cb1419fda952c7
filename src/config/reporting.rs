//! `[reporting]`: which forms the national coordinator asks for, and how
//! canhgac's categories fall into their classes.
//!
//! ```toml
//! [reporting]
//! forms = "/etc/canhgac/forms.toml"     # default: the built-in Circular 20/2017
//! classes = { recon = "other", web-attack = "unauthorised-access" }
//! ```
//!
//! A forms file that does not load stops the config, its problems at their
//! place in that file; a class override names a category of the taxonomy
//! and a class of the forms.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::validator::Validator;
use crate::category::Category;
use crate::forms::FormSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reporting {
    pub forms: Arc<FormSet>,
    /// Category id → class id of the summary form, where the config moves
    /// a category out of the forms file's default class.
    pub classes: BTreeMap<String, String>,
}

impl Default for Reporting {
    fn default() -> Reporting {
        Reporting {
            forms: Arc::new(FormSet::builtin()),
            classes: BTreeMap::new(),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReporting {
    forms: Option<Spanned<String>>,
    #[serde(default)]
    classes: BTreeMap<Spanned<String>, Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn reporting(&mut self, raw: &RawReporting) -> Reporting {
        let forms = match &raw.forms {
            None => FormSet::builtin(),
            Some(path) => {
                let file = self.resolve(path.get_ref());
                match std::fs::read_to_string(&file) {
                    Ok(text) => match FormSet::parse(&file.display().to_string(), &text) {
                        Ok(set) => set,
                        Err(problems) => {
                            self.errors.extend(problems.0);
                            FormSet::builtin()
                        }
                    },
                    Err(e) => {
                        self.error(
                            &path.span(),
                            format!("[reporting] forms: cannot read {}: {e}", file.display()),
                        );
                        FormSet::builtin()
                    }
                }
            }
        };
        let mut classes = BTreeMap::new();
        for (category, class) in &raw.classes {
            if let Err(e) = category.get_ref().parse::<Category>() {
                self.error(&category.span(), format!("[reporting] classes: {e}"));
                continue;
            }
            if !forms
                .summary
                .classes
                .iter()
                .any(|c| &c.id == class.get_ref())
            {
                let ids: Vec<&str> = forms
                    .summary
                    .classes
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect();
                self.error(
                    &class.span(),
                    format!(
                        "[reporting] classes: no class {:?} in the forms; expected one of {}",
                        class.get_ref(),
                        ids.join(", ")
                    ),
                );
                continue;
            }
            classes.insert(category.get_ref().clone(), class.get_ref().clone());
        }
        Reporting {
            forms: Arc::new(forms),
            classes,
        }
    }
}
