//! Architecture rule: the crate's top-level modules must not import each
//! other in a circle.
//!
//! The library is layered (inputs → rules → detect → store, with the daemon
//! on top). rustc accepts a circle between modules of one crate silently, but
//! once two modules need each other neither can be read, tested or moved on
//! its own any more. So this test reads the source itself (std only, no parser
//! crate), builds the graph "top-level module A names something in top-level
//! module B", and fails with the `file:line` of the references on each circle
//! so that whoever added one knows which import to cut.
//!
//! What counts as a reference: every `crate::X` path, in `use` trees (grouped
//! and nested ones included) and inline in code, and every `super::` path
//! that climbs out of a top-level module. Comments, string and char literals
//! and test code (`tests.rs` files, `tests/` directories, `#[cfg(test)]`
//! items and the files of `#[cfg(test)] mod x;`) are ignored: tests may reach
//! anywhere, the rule is about the code that ships.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// Read at compile time, as cargo sets it for every test target.
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------
// Lexer: just enough of Rust's to drop comments and literals and keep lines.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    /// A string, char or number literal: what is inside never names a module.
    Literal,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based, so that it can be printed as `file:line`.
    line: usize,
}

fn tokenize(source: &str) -> Vec<Token> {
    let c: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        let start_line = line;
        let tok = if ch == '\n' {
            line += 1;
            i += 1;
            continue;
        } else if ch.is_whitespace() {
            i += 1;
            continue;
        } else if ch == '/' && next == Some('/') {
            // Line and doc comments (`//`, `///`, `//!`) alike: up to the newline.
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
            continue;
        } else if ch == '/' && next == Some('*') {
            i = skip_block_comment(&c, i, &mut line);
            continue;
        } else if ch == '"' {
            i = skip_string(&c, i + 1, &mut line);
            Tok::Literal
        } else if ch == '\'' {
            if let Some(end) = char_literal_end(&c, i) {
                i = end;
                Tok::Literal
            } else {
                // A lifetime or label: the quote alone, the name follows as an ident.
                i += 1;
                Tok::Punct('\'')
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            match (word.as_str(), c.get(i)) {
                ("r" | "br" | "cr", Some('"' | '#')) if raw_string_at(&c, i) => {
                    i = skip_raw_string(&c, i, &mut line);
                    Tok::Literal
                }
                ("r", Some('#')) => {
                    // A raw identifier (`r#type`): the name is what matters.
                    let start = i + 1;
                    i = start;
                    while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                        i += 1;
                    }
                    Tok::Ident(c[start..i].iter().collect())
                }
                ("b" | "c", Some('"')) => {
                    i = skip_string(&c, i + 1, &mut line);
                    Tok::Literal
                }
                ("b", Some('\'')) => match char_literal_end(&c, i) {
                    Some(end) => {
                        i = end;
                        Tok::Literal
                    }
                    None => Tok::Ident(word),
                },
                _ => Tok::Ident(word),
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            Tok::Literal
        } else if ch == ':' && next == Some(':') {
            i += 2;
            Tok::PathSep
        } else {
            i += 1;
            Tok::Punct(ch)
        };
        out.push(Token {
            tok,
            line: start_line,
        });
    }
    out
}

/// `/* ... */`, which nests in Rust; returns the index after it.
fn skip_block_comment(c: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut depth = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            if c[i] == '\n' {
                *line += 1;
            }
            i += 1;
        }
    }
    i
}

/// From just after the opening `"`; returns the index after the closing one.
fn skip_string(c: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => {
                if c.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            ch => {
                if ch == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

/// Whether `#*"` starts at `i`, i.e. the `r` before it opens a raw string.
fn raw_string_at(c: &[char], mut i: usize) -> bool {
    while c.get(i) == Some(&'#') {
        i += 1;
    }
    c.get(i) == Some(&'"')
}

/// From the `#`s or `"` after the `r`; returns the index after the closing `"#…`.
fn skip_raw_string(c: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut hashes = 0;
    while c.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        if c[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    i
}

/// If the `'` at `i` opens a char literal (rather than a lifetime or a label),
/// the index after its closing quote.
fn char_literal_end(c: &[char], i: usize) -> Option<usize> {
    match c.get(i + 1) {
        Some('\\') => {
            // Skip the escaped char itself, which may be a quote (`'\''`).
            let mut j = i + 3;
            while j < c.len() && c[j] != '\'' {
                j += 1;
            }
            Some(j + 1)
        }
        Some(_) if c.get(i + 2) == Some(&'\'') => Some(i + 3),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Parser: the paths one file names, resolved from the crate root.
// ---------------------------------------------------------------------------

/// What one file says about other modules.
#[derive(Debug, Default)]
struct FileRefs {
    /// Every `crate::`, `super::` and `self::` path outside test code,
    /// resolved to segments from the crate root, with the line it is on.
    paths: Vec<(Vec<String>, usize)>,
    /// Child modules declared test-only (`#[cfg(test)] mod x;`), as absolute
    /// paths: their files are test code too.
    test_modules: Vec<Vec<String>>,
    /// Modules declared at the top of the file (`mod x;`), outside test code.
    modules: Vec<String>,
}

fn tok(toks: &[Token], i: usize) -> Option<&Tok> {
    toks.get(i).map(|t| &t.tok)
}

fn ident_at(toks: &[Token], i: usize) -> Option<&str> {
    match tok(toks, i) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn punct_at(toks: &[Token], i: usize, p: char) -> bool {
    tok(toks, i) == Some(&Tok::Punct(p))
}

/// `source` is the text of the file of module `module` (segments from the
/// crate root, empty for lib.rs).
fn scan(source: &str, module: &[&str]) -> FileRefs {
    let toks = tokenize(source);
    let module: Vec<String> = module.iter().map(ToString::to_string).collect();
    let mut refs = FileRefs::default();
    // Inline `mod name { … }` blocks we are in, each with the brace depth
    // outside it: `super::` counts from the innermost one.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let here = || {
            let mut here = module.clone();
            here.extend(inline.iter().map(|(name, _)| name.clone()));
            here
        };
        if cfg_test_at(&toks, i, true) {
            // `#![cfg(test)]` makes the module it opens test code: the whole
            // file, or the rest of an inline `mod x { … }` up to its `}`.
            let Some(&(_, outer)) = inline.last() else {
                break;
            };
            let mut d = depth;
            while i < toks.len() {
                match toks[i].tok {
                    Tok::Punct('{') => d += 1,
                    Tok::Punct('}') if d == outer + 1 => break,
                    Tok::Punct('}') => d -= 1,
                    _ => {}
                }
                i += 1;
            }
            continue;
        }
        if cfg_test_at(&toks, i, false) {
            let (end, test_module) = skip_test_item(&toks, i);
            if let Some(name) = test_module {
                let mut path = here();
                path.push(name);
                refs.test_modules.push(path);
            }
            i = end;
            continue;
        }
        match &toks[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(name) = ident_at(&toks, i + 1) {
                    if punct_at(&toks, i + 2, '{') {
                        inline.push((name.to_string(), depth));
                        // Land on the `{`, which the next round counts.
                        i += 2;
                        continue;
                    }
                    if punct_at(&toks, i + 2, ';') && depth == 0 {
                        refs.modules.push(name.to_string());
                    }
                }
            }
            Tok::Ident(w) if w == "use" => {
                let mut trees = Vec::new();
                let mut p = i + 1;
                use_tree(&toks, &mut p, &[], &mut trees);
                let here = here();
                for (path, line) in trees {
                    if let Some(abs) = resolve(&path, &here) {
                        refs.paths.push((abs, line));
                    }
                }
                i = p;
                continue;
            }
            Tok::Ident(w)
                if matches!(w.as_str(), "crate" | "super" | "self")
                    && tok(&toks, i + 1) == Some(&Tok::PathSep)
                    && (i == 0 || toks[i - 1].tok != Tok::PathSep) =>
            {
                // An inline path such as `crate::store::Store::open(..)`.
                let mut path = vec![w.clone()];
                let mut p = i + 1;
                while tok(&toks, p) == Some(&Tok::PathSep) {
                    let Some(seg) = ident_at(&toks, p + 1) else {
                        break;
                    };
                    path.push(seg.to_string());
                    p += 2;
                }
                if let Some(abs) = resolve(&path, &here()) {
                    refs.paths.push((abs, toks[i].line));
                }
                i = p;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

/// `#[cfg(test)]` (or `#![cfg(test)]` when `inner`) at `i`.
fn cfg_test_at(toks: &[Token], i: usize, inner: bool) -> bool {
    let mut p = i;
    if !punct_at(toks, p, '#') {
        return false;
    }
    p += 1;
    if inner {
        if !punct_at(toks, p, '!') {
            return false;
        }
        p += 1;
    }
    punct_at(toks, p, '[')
        && ident_at(toks, p + 1) == Some("cfg")
        && punct_at(toks, p + 2, '(')
        && ident_at(toks, p + 3) == Some("test")
        && punct_at(toks, p + 4, ')')
        && punct_at(toks, p + 5, ']')
}

/// Keywords that start an item or statement which does not end at a comma
/// (a `fn` may have `<A, B>` in its signature); anything else under
/// `#[cfg(test)]` is a field, a struct-literal field, an arm or a variant.
const ITEM_KEYWORDS: &[&str] = &[
    "const",
    "enum",
    "extern",
    "fn",
    "for",
    "if",
    "impl",
    "let",
    "loop",
    "macro_rules",
    "match",
    "mod",
    "static",
    "struct",
    "trait",
    "type",
    "union",
    "use",
    "while",
];

/// Skips the item after the `#[cfg(test)]` at `i`. Returns the index after
/// it and, for `#[cfg(test)] mod name;`, the name (its file is test code).
///
/// This is per item rather than "from the attribute to the end of the file":
/// the test modules do come last by convention, but test-only helpers and
/// declarations also sit in the middle of files (store/mod.rs declares
/// `#[cfg(test)] mod testing;` among the others, timestamp.rs has a
/// test-only fn before 500 lines of real code), and cutting there would hide
/// real imports.
fn skip_test_item(toks: &[Token], i: usize) -> (usize, Option<String>) {
    // Past the 7 tokens `# [ cfg ( test ) ]`; any further attributes belong
    // to the same item.
    let mut j = i + 7;
    while punct_at(toks, j, '#') && punct_at(toks, j + 1, '[') {
        let mut depth = 0;
        while let Some(t) = tok(toks, j) {
            j += 1;
            match t {
                Tok::Punct('[') => depth += 1,
                Tok::Punct(']') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let mut k = j;
    loop {
        match ident_at(toks, k) {
            Some("pub") if punct_at(toks, k + 1, '(') => {
                while tok(toks, k).is_some() && !punct_at(toks, k, ')') {
                    k += 1;
                }
                k += 1;
            }
            Some("pub" | "unsafe" | "async" | "default") => k += 1,
            _ => break,
        }
    }
    let keyword = ident_at(toks, k).is_some_and(|w| ITEM_KEYWORDS.contains(&w));
    let test_module = match (ident_at(toks, k), ident_at(toks, k + 1)) {
        (Some("mod"), Some(name)) if punct_at(toks, k + 2, ';') => Some(name.to_string()),
        _ => None,
    };
    let mut depth = 0usize;
    // Generic arguments of a field's type (`HashMap<K, V>`) hold commas too.
    // Counted only for the comma: a stray `<` (a comparison) at worst makes
    // the skip run on to the end of the enclosing block.
    let mut angles = 0usize;
    let mut p = j;
    while let Some(t) = tok(toks, p) {
        let follows = |c: char| p > 0 && punct_at(toks, p - 1, c);
        match t {
            Tok::Punct('<') if !punct_at(toks, p + 1, '=') => angles += 1,
            Tok::Punct('>') if !follows('-') && !follows('=') && !punct_at(toks, p + 1, '=') => {
                angles = angles.saturating_sub(1);
            }
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                if depth == 0 {
                    // The enclosing block closes: the item was its last
                    // (say a field without a trailing comma). Keep the closer.
                    return (p, test_module);
                }
                depth -= 1;
                if depth == 0 && *t == Tok::Punct('}') {
                    return (p + 1, test_module);
                }
            }
            Tok::Punct(';') if depth == 0 => return (p + 1, test_module),
            Tok::Punct(',') if depth == 0 && angles == 0 && !keyword => {
                return (p + 1, test_module)
            }
            _ => {}
        }
        p += 1;
    }
    (p, test_module)
}

/// Parses the use tree at `pos` (just after `use`, or inside a group), adding
/// every leaf path with the line of its last segment; stops before the `,`,
/// `}` or `;` that ends it.
fn use_tree(
    toks: &[Token],
    pos: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let mut path = prefix.to_vec();
    let mut line = toks.get(*pos).map_or(0, |t| t.line);
    if tok(toks, *pos) == Some(&Tok::PathSep) {
        // `::name` is an external crate, never a module of this one.
        path.push("::".to_string());
        *pos += 1;
    }
    loop {
        match tok(toks, *pos) {
            Some(Tok::Ident(seg)) => {
                path.push(seg.clone());
                line = toks[*pos].line;
                *pos += 1;
                if tok(toks, *pos) == Some(&Tok::PathSep) {
                    *pos += 1;
                } else {
                    break;
                }
            }
            Some(Tok::Punct('{')) => {
                *pos += 1;
                while let Some(t) = tok(toks, *pos) {
                    match t {
                        Tok::Punct('}') => {
                            *pos += 1;
                            break;
                        }
                        Tok::Punct(',') => *pos += 1,
                        // Not a use tree after all (a macro, broken code): stop here.
                        Tok::Punct(';') => return,
                        _ => {
                            let before = *pos;
                            use_tree(toks, pos, &path, out);
                            if *pos == before {
                                *pos += 1;
                            }
                        }
                    }
                }
                return;
            }
            Some(Tok::Punct('*')) => {
                path.push("*".to_string());
                line = toks[*pos].line;
                *pos += 1;
                break;
            }
            _ => break,
        }
    }
    if ident_at(toks, *pos) == Some("as") {
        *pos += 2;
    }
    out.push((path, line));
}

/// Resolves a path written in module `here` to segments from the crate root;
/// `None` for paths that do not start in this crate (`std::…`, `::x`) or
/// climb above its root. Names relative to `here` (`foo::Bar` for a child
/// `foo`) are `None` too: they cannot leave the current top-level module.
fn resolve(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let (mut abs, rest) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" | "super" => (here.to_vec(), path),
        _ => return None,
    };
    let mut leading = true;
    for seg in rest {
        match seg.as_str() {
            "super" if leading => {
                abs.pop()?;
            }
            // Leading `self::`, or `{self}` at the end: the module itself.
            "self" => {}
            _ => {
                leading = false;
                abs.push(seg.clone());
            }
        }
    }
    Some(abs)
}

// ---------------------------------------------------------------------------
// The graph of top-level modules.
// ---------------------------------------------------------------------------

/// Where one reference is written: a path relative to the manifest
/// directory and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

struct Graph {
    nodes: BTreeSet<String>,
    /// Every edge with each reference that creates it, in file order.
    edges: BTreeMap<(String, String), Vec<Site>>,
    /// Modules that `src/lib.rs` declares, to check the nodes against.
    lib_modules: BTreeSet<String>,
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .collect();
    paths.sort();
    paths
}

/// Every `.rs` file under `dir`, with its module path, skipping test files.
fn rust_files(dir: &Path, module: &[String], out: &mut Vec<(PathBuf, Vec<String>)>) {
    for path in list_dir(dir) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("non-UTF-8 file name in {}", dir.display()))
            .to_string();
        if path.is_dir() {
            if name != "tests" {
                let mut sub = module.to_vec();
                sub.push(name);
                rust_files(&path, &sub, out);
            }
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if stem == "tests" {
                continue;
            }
            let mut sub = module.to_vec();
            if stem != "mod" {
                sub.push(stem.to_string());
            }
            out.push((path, sub));
        }
    }
}

/// Builds the graph of the library under `root`/src.
///
/// The nodes are `src/<name>.rs` and `src/<name>/`, except lib.rs, main.rs,
/// src/bin/ and the modules main.rs declares (today `cli`): those belong to the
/// binary crate, where `crate::` means main.rs, and as the library cannot
/// name them they cannot be on a circle of library modules.
fn build_graph(root: &Path) -> Graph {
    let src = root.join("src");
    let main = src.join("main.rs");
    let bin_modules: BTreeSet<String> = if main.exists() {
        scan(&read(&main), &[]).modules.into_iter().collect()
    } else {
        BTreeSet::new()
    };
    let lib_modules = scan(&read(&src.join("lib.rs")), &[])
        .modules
        .into_iter()
        .collect();

    let mut nodes = BTreeSet::new();
    for path in list_dir(&src) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("non-UTF-8 file name in {}", src.display()));
        let node = if path.is_dir() {
            // src/bin/ holds separate binary crates, not modules.
            if name == "bin" {
                continue;
            }
            name
        } else {
            match name.strip_suffix(".rs") {
                Some(stem) if stem != "lib" && stem != "main" => stem,
                _ => continue,
            }
        };
        if !bin_modules.contains(node) {
            nodes.insert(node.to_string());
        }
    }

    let mut files = Vec::new();
    for node in &nodes {
        let module = vec![node.clone()];
        let file = src.join(format!("{node}.rs"));
        if file.is_file() {
            files.push((file, module.clone()));
        }
        let dir = src.join(node);
        if dir.is_dir() {
            rust_files(&dir, &module, &mut files);
        }
    }

    // Two passes: a file is test code if any file declares it `#[cfg(test)]`.
    let scanned: Vec<(PathBuf, Vec<String>, FileRefs)> = files
        .into_iter()
        .map(|(path, module)| {
            let segs: Vec<&str> = module.iter().map(String::as_str).collect();
            let refs = scan(&read(&path), &segs);
            (path, module, refs)
        })
        .collect();
    let test_modules: Vec<&Vec<String>> = scanned
        .iter()
        .flat_map(|(_, _, refs)| &refs.test_modules)
        .collect();

    let mut edges: BTreeMap<(String, String), Vec<Site>> = BTreeMap::new();
    for (path, module, refs) in &scanned {
        if test_modules.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        let file = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        let from = &module[0];
        for (abs, line) in &refs.paths {
            let Some(to) = abs.first() else { continue };
            if to != from && nodes.contains(to) {
                let site = Site {
                    file: file.clone(),
                    line: *line,
                };
                let sites = edges.entry((from.clone(), to.clone())).or_default();
                // `use crate::a::{B, C};` is one reference, not two. Paths
                // come in source order, so a repeat is always the last one.
                if sites.last() != Some(&site) {
                    sites.push(site);
                }
            }
        }
    }
    Graph {
        nodes,
        edges,
        lib_modules,
    }
}

/// Tarjan's algorithm over node indices; the recursion is as deep as the
/// longest import chain, a few dozen modules at most.
struct Tarjan<'a> {
    adj: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}
impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        let adj = self.adj;
        for &w in &adj[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if self.index[v] == Some(self.low[v]) {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// The strongly connected components of more than one node (Tarjan): each
/// one is a circle. Members sorted, components in order of their first member.
fn circles(
    nodes: &BTreeSet<String>,
    edges: &BTreeMap<(String, String), Vec<Site>>,
) -> Vec<Vec<String>> {
    let names: Vec<&String> = nodes.iter().collect();
    let index_of = |name: &String| names.binary_search(&name).ok();
    let mut adj = vec![Vec::new(); names.len()];
    for (from, to) in edges.keys() {
        if let (Some(f), Some(t)) = (index_of(from), index_of(to)) {
            adj[f].push(t);
        }
    }

    let n = names.len();
    let mut tarjan = Tarjan {
        adj: &adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in 0..n {
        if tarjan.index[v].is_none() {
            tarjan.visit(v);
        }
    }
    let mut found: Vec<Vec<String>> = tarjan
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut members: Vec<String> = c.into_iter().map(|v| names[v].clone()).collect();
            members.sort();
            members
        })
        .collect();
    found.sort();
    found
}

/// A shortest cycle through the first member of `circle`, as the list of
/// modules with the start repeated at the end: one concrete loop to show.
fn one_cycle(circle: &[String], edges: &BTreeMap<(String, String), Vec<Site>>) -> Vec<String> {
    let members: BTreeSet<&String> = circle.iter().collect();
    let start = &circle[0];
    let mut parent: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        for (from, to) in edges.keys() {
            if from != u || !members.contains(to) {
                continue;
            }
            if to == start {
                let mut path = vec![start.clone(), u.clone()];
                let mut at = u;
                while let Some(&p) = parent.get(at) {
                    path.push(p.clone());
                    at = p;
                }
                path.reverse();
                return path;
            }
            if to != start && !parent.contains_key(to) {
                parent.insert(to, u);
                queue.push_back(to);
            }
        }
    }
    // Unreachable for a real strongly connected component.
    circle.to_vec()
}

fn describe_circles(
    found: &[Vec<String>],
    edges: &BTreeMap<(String, String), Vec<Site>>,
) -> String {
    let sites_of = |from: &String, to: &String| &edges[&(from.clone(), to.clone())];
    let mut out = format!(
        "{} circle(s) among the top-level modules of src/. Cut each one, e.g. by moving the \
         shared item into the lower module or passing it in from above.\n",
        found.len()
    );
    for circle in found {
        out.push_str(&format!(
            "\ncircle of {} modules: {}\n",
            circle.len(),
            circle.join(", ")
        ));
        // One concrete loop, with every reference behind each of its edges:
        // all of them must go to cut that edge.
        let cycle = one_cycle(circle, edges);
        out.push_str(&format!("  for example {}:\n", cycle.join(" -> ")));
        for pair in cycle.windows(2) {
            out.push_str(&format!("    {} -> {}:\n", pair[0], pair[1]));
            for site in sites_of(&pair[0], &pair[1]) {
                out.push_str(&format!("      {}:{}\n", site.file, site.line));
            }
        }
        // In a big circle most edges are the intended layering; the one that
        // closed it usually has few references, so those come first.
        let mut inside: Vec<(&(String, String), &Vec<Site>)> = edges
            .iter()
            .filter(|((f, t), _)| circle.contains(f) && circle.contains(t))
            .collect();
        inside.sort_by_key(|(_, sites)| sites.len());
        out.push_str("  every import inside this circle, fewest references first:\n");
        for ((from, to), sites) in inside {
            out.push_str(&format!(
                "    {from} -> {to}: {}:{} ({} reference{})\n",
                sites[0].file,
                sites[0].line,
                sites.len(),
                if sites.len() == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The checks on the real tree.
// ---------------------------------------------------------------------------

#[test]
fn top_level_modules_do_not_import_each_other_in_a_circle() {
    let graph = build_graph(Path::new(MANIFEST_DIR));
    let found = circles(&graph.nodes, &graph.edges);
    assert!(
        found.is_empty(),
        "{}",
        describe_circles(&found, &graph.edges)
    );
}

/// Guards the check above: a parser that silently finds nothing would pass it.
#[test]
fn module_graph_has_the_known_edges() {
    let graph = build_graph(Path::new(MANIFEST_DIR));
    let references: usize = graph.edges.values().map(Vec::len).sum();
    println!(
        "{} top-level modules, {} edges, {} references",
        graph.nodes.len(),
        graph.edges.len(),
        references
    );
    assert!(
        graph.nodes.len() >= 10,
        "too few modules: {:?}",
        graph.nodes
    );
    assert_eq!(
        graph.nodes, graph.lib_modules,
        "the modules found on disk should be exactly those src/lib.rs declares"
    );
    assert!(
        graph.edges.len() >= 10,
        "too few edges: {:?}",
        graph.edges.keys()
    );
    for (from, to) in [
        ("daemon", "store"),
        ("daemon", "detect"),
        ("daemon", "rules"),
        ("rules", "input"),
    ] {
        assert!(
            graph
                .edges
                .contains_key(&(from.to_string(), to.to_string())),
            "{from} -> {to} is missing from the graph: {:?}",
            graph.edges.keys()
        );
    }
}

// ---------------------------------------------------------------------------
// The parser and the cycle finder on small inputs.
// ---------------------------------------------------------------------------

/// Paths found in `source` (the file of module `module`) as `a::b` strings.
fn paths_in(source: &str, module: &[&str]) -> Vec<String> {
    scan(source, module)
        .paths
        .into_iter()
        .map(|(p, _)| p.join("::"))
        .collect()
}

#[test]
fn parses_plain_and_grouped_use_across_lines() {
    let source = "use crate::store::Store;\nuse crate::{\n    detect::Incident,\n    rules,\n};\nuse std::fs;\n";
    let refs = scan(source, &["daemon"]);
    let got: Vec<(String, usize)> = refs
        .paths
        .into_iter()
        .map(|(p, l)| (p.join("::"), l))
        .collect();
    assert_eq!(
        got,
        [
            ("store::Store".to_string(), 1),
            ("detect::Incident".to_string(), 3),
            ("rules".to_string(), 4)
        ]
    );
}

#[test]
fn parses_nested_groups_self_and_renames() {
    let source = "pub(crate) use crate::{a::{self, B as C, d::{E, F}}, g::*};";
    assert_eq!(
        paths_in(source, &["x"]),
        ["a", "a::B", "a::d::E", "a::d::F", "g::*"]
    );
}

#[test]
fn finds_inline_paths_but_not_visibility() {
    let source =
        "pub(crate) fn f() { let s = crate::store::Store::open(p); g::<crate::detect::X>(); }";
    assert_eq!(
        paths_in(source, &["daemon"]),
        ["store::Store::open", "detect::X"]
    );
}

#[test]
fn resolves_super_against_the_file_and_inline_modules() {
    // In src/foo.rs `super` is the crate root.
    assert_eq!(paths_in("use super::x::Y;", &["foo"]), ["x::Y"]);
    // In src/foo/bar.rs it is foo, and `super::super` the root.
    assert_eq!(paths_in("use super::baz;", &["foo", "bar"]), ["foo::baz"]);
    assert_eq!(
        paths_in("use super::super::{x, y::Z};", &["foo", "bar"]),
        ["x", "y::Z"]
    );
    assert_eq!(
        paths_in("fn f() { super::super::x::g() }", &["foo", "bar"]),
        ["x::g"]
    );
    // Inside an inline module, one more level; after it, back to the file's.
    assert_eq!(
        paths_in(
            "mod inner { use super::a; fn f() {} }\nuse super::b;",
            &["foo"]
        ),
        ["foo::a", "b"]
    );
    // Above the root is not a path.
    assert!(paths_in("use super::super::x;", &["foo"]).is_empty());
}

#[test]
fn ignores_comments_and_literals() {
    let source = r##"
// use crate::a;
/// crate::b::C
//! crate::c
/* crate::d /* nested crate::e */ crate::f */
const S: &str = "crate::g \" crate::h";
const R: &str = r#"crate::i "quoted" crate::j"#;
const B: &[u8] = b"crate::k";
const Q: char = '"';
fn f<'a>(x: &'a str) -> char { let _ = crate::real::X; '\'' }
"##;
    assert_eq!(paths_in(source, &["m"]), ["real::X"]);
}

#[test]
fn ignores_test_code() {
    let source = "\
use crate::a::A;
#[cfg(test)]
mod testing;
#[cfg(test)]
fn helper<T, U>() { crate::b::f(); }
struct S {
    #[cfg(test)]
    deny: HashMap<u8, crate::c::C>,
    keep: crate::d::D,
}
fn g() { let s = S {
    #[cfg(test)]
    deny: crate::e::E::new(),
    keep: crate::f::F };
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::z::Z;
}
";
    let refs = scan(source, &["store"]);
    let got: Vec<String> = refs.paths.into_iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(got, ["a::A", "d::D", "f::F"]);
    assert_eq!(
        refs.test_modules,
        [vec!["store".to_string(), "testing".to_string()]]
    );
    assert!(paths_in("#![cfg(test)]\nuse crate::a;", &["m"]).is_empty());
    assert_eq!(
        paths_in(
            "mod t {\n#![cfg(test)]\nuse crate::a;\n}\nuse crate::b;",
            &["m"]
        ),
        ["b"]
    );
}

#[test]
fn finds_module_declarations() {
    let refs = scan(
        "pub mod a;\nmod b;\n#[cfg(test)]\nmod c;\nmod d { mod e; }",
        &[],
    );
    assert_eq!(refs.modules, ["a", "b"]);
}

#[test]
fn finds_circles_and_reports_their_sites() {
    let site = |line| Site {
        file: "src/x.rs".to_string(),
        line,
    };
    let nodes: BTreeSet<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut edges = BTreeMap::new();
    for (i, (f, t)) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")]
        .iter()
        .enumerate()
    {
        edges.insert((f.to_string(), t.to_string()), vec![site(i + 1)]);
    }
    assert_eq!(circles(&nodes, &edges), [["a", "b", "c"]]);
    let text = describe_circles(&circles(&nodes, &edges), &edges);
    assert!(text.contains("a -> b -> c -> a"), "{text}");
    assert!(text.contains("c -> a:\n      src/x.rs:3"), "{text}");
    assert!(text.contains("c -> a: src/x.rs:3 (1 reference)"), "{text}");

    edges.remove(&("c".to_string(), "a".to_string()));
    assert!(circles(&nodes, &edges).is_empty());
}
