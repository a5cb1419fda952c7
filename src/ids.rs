//! Enums whose values are written as fixed ids: in config and rule files, the store, metric
//! labels, reports and the API. One list gives each value its id, so that the values, their
//! ids and what parses cannot disagree.

/// Declares an enum from a list of `Variant => "id"`, with `ALL` (every value, in declaration
/// order), `id`, `Display` as the id and `FromStr` from it. The literal after the enum's name
/// is what a parse error calls the value: "unknown category `x`; expected one of ...".
macro_rules! id_enum {
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident: $what:literal {
            $( $(#[$variant_attr:meta])* $variant:ident => $id:literal, )+
        }
    ) => {
        $(#[$attr])*
        $vis enum $name {
            $( $(#[$variant_attr])* $variant, )+
        }

        impl $name {
            pub const ALL: [$name; [$($id),+].len()] = [$($name::$variant),+];
            /// Every id, in declaration order (for argument parsers).
            pub const ALL_IDS: [&'static str; [$($id),+].len()] = [$($id),+];

            pub fn id(self) -> &'static str {
                match self {
                    $( $name::$variant => $id, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.id())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.into_iter().find(|v| v.id() == s).ok_or_else(|| {
                    format!(
                        "unknown {} `{s}`; expected one of {}",
                        $what,
                        $name::ALL.map($name::id).join(", ")
                    )
                })
            }
        }
    };
}

pub(crate) use id_enum;

/// Fails on the first name given twice: in a table looked up by name (input
/// types, time-stamp formats) a second row of a name would never be reached.
#[cfg(test)]
pub(crate) fn assert_distinct<'a>(what: &str, names: impl IntoIterator<Item = &'a str>) {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        assert!(seen.insert(name), "{what} {name} twice");
    }
}
