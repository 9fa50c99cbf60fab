//! `opsdeck runbook lint`: the runner's own parser ([`super::parse::parse_file`]) plus the rules
//! that keep a runbook safe to run against production (interfaces.md "Runbook runs"): every
//! `kubectl` targets `--context "$CONTEXT"`, no variable is used that nobody provides, no
//! state-changing command hides in a step not marked `destructive`, and (when installed)
//! `shellcheck` passes on every step. Findings read `FILE:LINE: message`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use super::parse::{self, ParseError, Runbook, Step};
use super::vars::{FROM_CONSOLE, RESERVED};

/// What the rules need to know beyond the runbook itself.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// Names a cluster's `[cluster.env]` provides (the config's, and `BACKUP_DIR`, the one
    /// interfaces.md documents).
    pub cluster_env: BTreeSet<String>,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            cluster_env: ["BACKUP_DIR".to_string()].into(),
        }
    }
}

/// Variables any bash has; referring to them is fine.
const SHELL_VARS: [&str; 16] = [
    "PWD",
    "USER",
    "HOSTNAME",
    "TMPDIR",
    "IFS",
    "RANDOM",
    "SECONDS",
    "LINENO",
    "BASH_SOURCE",
    "PIPESTATUS",
    "EUID",
    "UID",
    "OPTARG",
    "OPTIND",
    "REPLY",
    "EPOCHSECONDS",
];

/// Every finding of the parser and the rules (not shellcheck: see [`shellcheck`]).
pub fn lint_text(name: &str, file: &str, text: &str, opts: &LintOptions) -> Vec<ParseError> {
    match parse::parse_file(name, file, text) {
        Err(errors) => errors,
        Ok(rb) => {
            let mut out = lint_runbook(&rb, file, text, opts);
            out.sort_by_key(|e| e.line);
            out
        }
    }
}

fn at(file: &str, line: usize, message: String) -> ParseError {
    ParseError {
        file: file.to_string(),
        line,
        message,
    }
}

#[derive(serde::Deserialize, Default)]
struct Meta {
    title: Option<serde_json::Value>,
    summary: Option<serde_json::Value>,
}

fn lint_runbook(rb: &Runbook, file: &str, text: &str, opts: &LintOptions) -> Vec<ParseError> {
    let mut out = Vec::new();
    let (front, _) = parse::split_front_matter(text);
    match front {
        None => out.push(at(
            file,
            1,
            "no YAML front matter (--- title, summary ---)".into(),
        )),
        Some(y) => {
            let meta: Meta = serde_saphyr::from_str(y).unwrap_or_default();
            for (key, value) in [("title", &meta.title), ("summary", &meta.summary)] {
                match value {
                    Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                        if key == "summary" && s.trim().contains('\n') {
                            out.push(at(
                                file,
                                1,
                                "front matter `summary` must be one line".into(),
                            ));
                        }
                    }
                    _ => out.push(at(file, 1, format!("front matter lacks `{key}`"))),
                }
            }
        }
    }
    for v in &rb.vars {
        let upper = v
            .name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !upper {
            out.push(at(
                file,
                1,
                format!("var `{}` is not an UPPER_SNAKE name", v.name),
            ));
        }
        if v.secret && v.default.as_deref().is_some_and(|d| !d.is_empty()) {
            out.push(at(
                file,
                1,
                format!("secret var `{}` must not have a default", v.name),
            ));
        }
    }
    if rb.steps.is_empty() {
        out.push(at(file, 1, "runbook has no sh/bash/shell steps".into()));
    }
    let handed = handed_on_names(rb);
    let mut known: BTreeSet<String> = RESERVED.iter().map(|s| s.to_string()).collect();
    known.extend(FROM_CONSOLE.iter().map(|s| s.to_string()));
    known.extend(SHELL_VARS.iter().map(|s| s.to_string()));
    known.extend(opts.cluster_env.iter().cloned());
    known.extend(rb.vars.iter().map(|v| v.name.clone()));
    known.extend(handed.iter().cloned());
    for step in &rb.steps {
        out.extend(lint_step(step, file, &known));
    }
    out
}

fn lint_step(step: &Step, file: &str, known: &BTreeSet<String>) -> Vec<ParseError> {
    let mut out = Vec::new();
    let label = &step.name;
    let body_line = |i: usize| step.line + 1 + i;
    if !step.name_given {
        out.push(at(
            file,
            step.line,
            format!("step `{label}` has no name: add {{name=...}}"),
        ));
    } else if !is_kebab(&step.name) {
        out.push(at(
            file,
            step.line,
            format!("step name `{label}` is not kebab-case"),
        ));
    }
    if step.command.trim().is_empty() {
        out.push(at(file, step.line, format!("step `{label}` is empty")));
    }
    for (i, segment) in kubectl_without_context(&step.command) {
        out.push(at(
            file,
            body_line(i),
            format!(
                "step `{label}`: kubectl without --context \"$CONTEXT\": {}",
                segment.chars().take(100).collect::<String>()
            ),
        ));
    }
    if !step.attrs.destructive
        && let Some((i, what, hit)) = state_change(&step.command)
    {
        out.push(at(
            file,
            body_line(i),
            format!(
                "step `{label}`: {what} ({}) in a step not marked destructive=true",
                hit.chars().take(60).collect::<String>()
            ),
        ));
    }
    let expanded = bash_expanded_text(&step.command);
    let mut local: BTreeSet<String> = assigned_names(&expanded);
    local.extend(read_targets(&expanded));
    local.extend(for_vars(&expanded));
    let mut reported = BTreeSet::new();
    for (i, name) in var_refs(&expanded) {
        if known.contains(&name) || local.contains(&name) || !reported.insert(name.clone()) {
            continue;
        }
        out.push(at(
            file,
            body_line(i),
            format!(
                "step `{label}`: variable ${name} is neither provided by opsdeck, declared in vars, handed over via $OPSDECK_ENV nor assigned in the step"
            ),
        ));
    }
    out
}

fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_name(s: &str) -> bool {
    super::vars::valid_name(s)
}

/// Names any step appends to `$OPSDECK_ENV`: the UPPER_CASE run before each `=` (or
/// `:secret=`) on a line that mentions it, so `printf 'A=%s\nB=%s\n'` hands on A and B.
fn handed_on_names(rb: &Runbook) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for step in &rb.steps {
        for line in step.command.lines().filter(|l| l.contains("OPSDECK_ENV")) {
            for (eq, _) in line.match_indices('=') {
                let head = &line[..eq];
                let head = head.strip_suffix(":secret").unwrap_or(head);
                let start = head
                    .rfind(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .map_or(0, |i| i + 1);
                let name = head[start..].trim_start_matches(|c: char| c.is_ascii_digit());
                if !name.is_empty() {
                    out.insert(name.to_string());
                }
            }
        }
    }
    out.remove("OPSDECK_ENV");
    out
}

/// Every maximal identifier in `text` with its byte offset.
fn names_in(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (start, is_word(c)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out.into_iter()
        .filter(|(_, n)| !n.starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

/// The step's lines with `\`-continuations joined and comment lines blanked, each with the
/// index of its first physical line.
fn logical_lines(body: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in body.split('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            if cur.is_none() {
                out.push((i, String::new()));
            }
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            let entry = cur.get_or_insert((i, String::new()));
            entry.1.push_str(stripped);
            entry.1.push(' ');
            continue;
        }
        match cur.take() {
            Some((start, mut text)) => {
                text.push_str(line);
                out.push((start, text));
            }
            None => out.push((i, line.to_string())),
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    out
}

/// Where `word` occurs as a whole word in `text` (byte offsets).
fn word_at(text: &str, word: &str) -> Vec<usize> {
    text.match_indices(word)
        .filter(|(i, _)| {
            let before = text[..*i].chars().next_back();
            let after = text[i + word.len()..].chars().next();
            !before.is_some_and(is_word) && !after.is_some_and(is_word)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Each `kubectl` call (up to the first `|`, `;`, `&` or `$(`) that lacks
/// `--context "$CONTEXT"`, with its line index.
fn kubectl_without_context(body: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in logical_lines(body) {
        for (pos, _) in line.match_indices("kubectl") {
            let before = line[..pos].chars().next_back();
            let after = line[pos + 7..].chars().next();
            let starts = before.is_none_or(|c| c.is_whitespace() || ";&|(`".contains(c));
            let ends = after.is_none_or(char::is_whitespace);
            if !(starts && ends) {
                continue;
            }
            let rest = &line[pos + 7..];
            let end = ["||", "&&", "|", ";", "&", "$("]
                .iter()
                .filter_map(|sep| rest.find(sep))
                .min()
                .unwrap_or(rest.len());
            let segment = &rest[..end];
            if !has_context_flag(segment) {
                out.push((i, format!("kubectl{segment}").trim().to_string()));
            }
        }
    }
    out
}

fn has_context_flag(segment: &str) -> bool {
    segment.match_indices("--context").any(|(i, _)| {
        let rest = &segment[i + "--context".len()..];
        let value = match rest.strip_prefix('=') {
            Some(v) => v,
            None if rest.starts_with(char::is_whitespace) => rest.trim_start(),
            None => return false,
        };
        value.starts_with("\"$CONTEXT\"") || value.starts_with("\"${CONTEXT}\"")
    })
}

/// The first state-changing command in `body` (line index, what, the text that matched).
fn state_change(body: &str) -> Option<(usize, &'static str, String)> {
    let lines = logical_lines(body);
    let code: String = lines
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let line_of = |offset: usize| {
        let n = code[..offset].matches('\n').count();
        lines.get(n).map_or(0, |(i, _)| *i)
    };
    let starts_word = |tok: &str, words: &[&str]| {
        words.iter().any(|w| {
            tok.strip_prefix(w)
                .is_some_and(|rest| !rest.starts_with(is_word))
        })
    };
    for pos in word_at(&code, "kubectl") {
        let rest = &code[pos + 7..];
        let end = rest.find(['|', ';', '&']).unwrap_or(rest.len());
        let segment = &rest[..end];
        let mut tokens: Vec<&str> = segment.split_whitespace().collect();
        if !segment.starts_with(char::is_whitespace) && !tokens.is_empty() {
            tokens.remove(0);
        }
        let hit = |what: &'static str| {
            Some((
                line_of(pos),
                what,
                format!("kubectl{segment}").trim().to_string(),
            ))
        };
        for (k, tok) in tokens.iter().enumerate() {
            let next = tokens.get(k + 1).copied().unwrap_or("");
            if starts_word(
                tok,
                &[
                    "scale", "delete", "apply", "patch", "replace", "edit", "cordon", "uncordon",
                    "drain", "annotate", "label", "taint",
                ],
            ) {
                return hit("kubectl state change");
            }
            if *tok == "rollout" && starts_word(next, &["restart", "undo", "pause", "resume"]) {
                return hit("kubectl rollout change");
            }
            if starts_word(tok, &["create"]) && !tokens[k..].iter().any(|t| t.contains("--dry-run"))
            {
                return hit("kubectl create");
            }
            if *tok == "set" && starts_word(next, &["image", "env", "resources"]) {
                return hit("kubectl set");
            }
        }
    }
    let sequences: [(&[&str], &[&str], &'static str); 2] = [
        (
            &["systemctl"],
            &["restart", "stop", "start", "kill"],
            "systemctl state change",
        ),
        (
            &["argocd", "app"],
            &["sync", "rollback", "delete", "set", "patch"],
            "argocd state change",
        ),
    ];
    for (words, verbs, what) in sequences {
        for pos in word_at(&code, words[0]) {
            let mut tokens = code[pos..].split_whitespace();
            let lead_ok = words.iter().all(|w| tokens.next() == Some(*w));
            if lead_ok && tokens.next().is_some_and(|t| starts_word(t, verbs)) {
                let hit: String = code[pos..].lines().next().unwrap_or("").to_string();
                return Some((line_of(pos), what, hit));
            }
        }
    }
    let lower = code.to_ascii_lowercase();
    for verb in ["drop", "truncate"] {
        for pos in word_at(&lower, verb) {
            let mut tokens = lower[pos..].split_whitespace();
            tokens.next();
            let object = tokens.next().unwrap_or("");
            let line_rest = lower[pos..].lines().next().unwrap_or("");
            if starts_word(object, &["database", "table", "schema"])
                && !line_rest.contains("scratch-ok")
            {
                let hit = code[pos..].lines().next().unwrap_or("").to_string();
                return Some((line_of(pos), "SQL drop/truncate", hit));
            }
        }
    }
    None
}

/// The parts of a step where bash expands `$VAR`: quoted heredoc bodies, comments and
/// single-quoted strings are dropped (for `sh -c '...'` payloads the variables belong to the
/// shell in the pod). Newlines are kept, so line numbers still hold.
fn bash_expanded_text(text: &str) -> String {
    let text = drop_quoted_heredocs(text);
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut out = String::new();
    let mut i = 0;
    let mut in_double = false;
    // `$( ... )` opens a new quoting context, also inside double quotes.
    let mut stack: Vec<(bool, usize)> = Vec::new();
    let mut depth = 0usize;
    while i < n {
        let c = chars[i];
        if c == '\\' && i + 1 < n {
            out.push(c);
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '$' && i + 1 < n && chars[i + 1] == '(' {
            stack.push((in_double, depth));
            in_double = false;
            depth = 0;
            out.push_str("$(");
            i += 2;
            continue;
        }
        if !in_double && !stack.is_empty() && (c == '(' || c == ')') {
            if c == '(' {
                depth += 1;
            } else if depth > 0 {
                depth -= 1;
            } else if let Some((d, dep)) = stack.pop() {
                in_double = d;
                depth = dep;
            }
            out.push(c);
            i += 1;
            continue;
        }
        if in_double {
            if c == '"' {
                in_double = false;
            }
            out.push(c);
            i += 1;
            continue;
        }
        if c == '"' {
            in_double = true;
            out.push(c);
            i += 1;
            continue;
        }
        if c == '\'' {
            let ansi = i > 0 && chars[i - 1] == '$';
            let mut j = i + 1;
            while j < n && chars[j] != '\'' {
                j += if ansi && chars[j] == '\\' { 2 } else { 1 };
            }
            out.push_str("''");
            for &skipped in &chars[i + 1..j.min(n)] {
                if skipped == '\n' {
                    out.push('\n');
                }
            }
            i = j + 1;
            continue;
        }
        if c == '#' && (i == 0 || " \t\n;".contains(chars[i - 1])) {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Blanks the bodies of `<<'EOF'` / `<<"EOF"` heredocs (bash does not expand them), keeping
/// their lines.
fn drop_quoted_heredocs(text: &str) -> String {
    let mut out = Vec::new();
    let mut terminator: Option<String> = None;
    for line in text.split('\n') {
        if let Some(t) = &terminator {
            if line.trim() == t {
                terminator = None;
                out.push(line.to_string());
            } else {
                out.push(String::new());
            }
            continue;
        }
        out.push(line.to_string());
        if let Some(pos) = line.find("<<") {
            let rest = line[pos + 2..].trim_start_matches('-').trim_start();
            for q in ['\'', '"'] {
                if let Some(inner) = rest.strip_prefix(q)
                    && let Some(end) = inner.find(q)
                    && is_name(&inner[..end])
                {
                    terminator = Some(inner[..end].to_string());
                }
            }
        }
    }
    out.join("\n")
}

/// `$NAME` and `${NAME...}` references, with their line index.
fn var_refs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        for (pos, _) in line.match_indices('$') {
            let rest = &line[pos + 1..];
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            let name: String = rest.chars().take_while(|&c| is_word(c)).collect();
            if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()) {
                out.push((i, name));
            }
        }
    }
    out
}

/// Names assigned in the step (`X=`, `X+=`, `X[i]=`, after `local`/`export`/... too).
fn assigned_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (start, name) in names_in(text) {
        let before = text[..start].chars().next_back();
        if !before.is_none_or(|c| c.is_whitespace() || ";&|(".contains(c)) {
            continue;
        }
        let mut rest = &text[start + name.len()..];
        if rest.starts_with('[')
            && let Some(end) = rest.find(']')
        {
            rest = &rest[end + 1..];
        }
        let rest = rest.strip_prefix('+').unwrap_or(rest);
        if rest.starts_with('=') {
            out.insert(name.to_string());
        }
    }
    out
}

/// Names set by `read [-r] [-a ARR] [-d D] ... NAME...`.
fn read_targets(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for pos in word_at(text, "read") {
        let rest = &text[pos + 4..];
        if !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let end = rest
            .find([';', '&', '|', '<', '>', '\n'])
            .unwrap_or(rest.len());
        let toks: Vec<&str> = rest[..end].split_whitespace().collect();
        let mut i = 0;
        while i < toks.len() {
            let t = toks[i];
            if let Some(opt) = t.strip_prefix('-') {
                if opt.len() == 1 && "adinNptu".contains(opt) {
                    if t == "-a"
                        && let Some(arr) = toks.get(i + 1)
                    {
                        names.push(arr.to_string());
                    }
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if is_name(t) {
                names.push(t.to_string());
                i += 1;
                continue;
            }
            break;
        }
    }
    names
}

/// Loop variables: `for NAME in`.
fn for_vars(text: &str) -> Vec<String> {
    word_at(text, "for")
        .into_iter()
        .filter_map(|pos| {
            let mut toks = text[pos + 3..].split_whitespace();
            let name = toks.next()?;
            (is_name(name) && toks.next() == Some("in")).then(|| name.to_string())
        })
        .collect()
}

/// Whether `shellcheck` can be run.
pub fn shellcheck_installed() -> bool {
    Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Lines before the step's text in the file handed to shellcheck.
const HEADER_LINES: usize = 3;

/// Runs shellcheck over every step (as bash, `set -euo pipefail`, with the variables opsdeck,
/// `[cluster.env]`, `vars` and hand-offs provide exported). Findings are placed at the
/// runbook's own line. SC2016 is left out on purpose: steps hand scripts to a shell in a pod
/// (`kubectl exec ... -- sh -c '...'`) so that secrets held there expand there.
pub fn shellcheck(
    rb: &Runbook,
    file: &str,
    opts: &LintOptions,
) -> std::io::Result<Vec<ParseError>> {
    let dir = tempfile::tempdir()?;
    let mut exports: Vec<String> = RESERVED.iter().map(|s| s.to_string()).collect();
    exports.extend(opts.cluster_env.iter().cloned());
    exports.extend(rb.vars.iter().map(|v| v.name.clone()));
    exports.extend(handed_on_names(rb));
    let mut seen = BTreeSet::new();
    exports.retain(|e| seen.insert(e.clone()));
    let mut out = Vec::new();
    for step in &rb.steps {
        let script = dir.path().join(format!("step-{:03}.sh", step.number));
        std::fs::write(
            &script,
            format!(
                "#!/usr/bin/env bash\nset -euo pipefail\nexport {}\n{}",
                exports.join(" "),
                step.command
            ),
        )?;
        let result = Command::new("shellcheck")
            .args([
                "--shell=bash",
                "--severity=style",
                "--exclude=SC2016",
                "--format=gcc",
            ])
            .arg(&script)
            .output()?;
        if result.status.success() {
            continue;
        }
        let text = String::from_utf8_lossy(&result.stdout).into_owned()
            + &String::from_utf8_lossy(&result.stderr);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            out.push(shellcheck_finding(line, &script, step, file));
        }
    }
    Ok(out)
}

fn shellcheck_finding(line: &str, script: &Path, step: &Step, file: &str) -> ParseError {
    let prefix = format!("{}:", script.display());
    let rest = line.strip_prefix(&prefix).unwrap_or(line);
    let mut parts = rest.splitn(3, ':');
    let (l, col, msg) = (parts.next(), parts.next(), parts.next());
    match (l.and_then(|l| l.parse::<usize>().ok()), col, msg) {
        (Some(l), Some(col), Some(msg)) if l > HEADER_LINES => at(
            file,
            step.line + l - HEADER_LINES,
            format!("step `{}`: shellcheck (col {col}):{msg}", step.name),
        ),
        _ => at(
            file,
            step.line,
            format!("step `{}`: shellcheck: {rest}", step.name),
        ),
    }
}

/// `opsdeck runbook lint [FILE...]`: the embedded runbooks without FILE. Prints one
/// `FILE:LINE: message` line per finding; returns 0 clean, 1 findings, 3 a FILE that cannot be
/// read.
pub fn cli(files: &[std::path::PathBuf], config: &crate::config::Config) -> i32 {
    let mut opts = LintOptions::default();
    for c in &config.clusters {
        opts.cluster_env.extend(c.env.keys().cloned());
    }
    let mut sources: Vec<(String, String, String)> = Vec::new();
    if files.is_empty() {
        for (name, text) in super::EMBEDDED {
            sources.push((
                name.to_string(),
                super::embedded_path(name),
                text.to_string(),
            ));
        }
    }
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(text) => {
                let name = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                sources.push((name, f.display().to_string(), text));
            }
            Err(e) => {
                eprintln!("opsdeck: cannot read {}: {e}", f.display());
                return crate::cli::exit::USAGE;
            }
        }
    }
    let checker = shellcheck_installed();
    if !checker {
        eprintln!(
            "warning: shellcheck is not installed, so steps were not checked with it (Debian: apt-get install -y shellcheck)"
        );
    }
    let (mut findings, mut steps) = (0usize, 0usize);
    for (name, file, text) in &sources {
        let mut found = lint_text(name, file, text, &opts);
        if let Ok(rb) = parse::parse_file(name, file, text) {
            steps += rb.steps.len();
            if checker {
                match shellcheck(&rb, file, &opts) {
                    Ok(more) => found.extend(more),
                    Err(e) => found.push(at(file, 1, format!("cannot run shellcheck: {e}"))),
                }
            }
        }
        found.sort_by_key(|e| e.line);
        for f in &found {
            println!("{f}");
        }
        findings += found.len();
    }
    if findings == 0 {
        eprintln!(
            "runbook lint: {} runbooks, {steps} steps: ok",
            sources.len()
        );
        0
    } else {
        eprintln!(
            "runbook lint: {findings} problem{} in {} runbooks",
            if findings == 1 { "" } else { "s" },
            sources.len()
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(text: &str) -> Vec<String> {
        lint_text("t", "t.md", text, &LintOptions::default())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const HEAD: &str = "---\ntitle: T\nsummary: S\nvars:\n  WHO:\n    prompt: who\n---\n";

    #[test]
    fn a_clean_runbook_has_no_findings() {
        let text = format!(
            "{HEAD}# T\n\n```sh {{name=look}}\nkubectl --context \"$CONTEXT\" get pods -n \"$APP_NAMESPACE\"\necho \"$WHO\" >> \"$BACKUP_DIR/x\"\nn=1; echo \"$n\"\nfor p in a b; do echo \"$p\"; done\necho \"SEEN=1\" >> \"$OPSDECK_ENV\"\n```\n\n```sh {{name=later}}\necho \"$SEEN\"\necho '$NOT_EXPANDED'\n```\n"
        );
        assert_eq!(lint(&text), Vec::<String>::new());
    }

    #[test]
    fn kubectl_must_target_the_context() {
        let text = format!("{HEAD}```sh {{name=look}}\necho hi\nkubectl get pods | grep x\n```\n");
        let f = lint(&text);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("t.md:10: step `look`: kubectl without --context"),
            "{f:?}"
        );
    }

    #[test]
    fn state_changes_need_destructive() {
        for cmd in [
            "kubectl --context \"$CONTEXT\" -n x scale deploy/y --replicas=0",
            "kubectl --context \"$CONTEXT\" rollout restart deploy/y",
            "kubectl --context \"$CONTEXT\" create job x --from=cronjob/y",
            "systemctl restart k3s",
            "argocd app sync x",
            "psql -c 'DROP DATABASE goapps'",
        ] {
            let text = format!("{HEAD}```sh {{name=change}}\n{cmd}\n```\n");
            let f = lint(&text);
            assert!(
                f.iter().any(|m| m.contains("not marked destructive=true")),
                "{cmd}: {f:?}"
            );
            let text = format!("{HEAD}```sh {{name=change destructive=true}}\n{cmd}\n```\n");
            assert!(
                !lint(&text).iter().any(|m| m.contains("destructive")),
                "{cmd}"
            );
        }
        let text = format!(
            "{HEAD}```sh {{name=look}}\nkubectl --context \"$CONTEXT\" create job x --dry-run=client -o yaml\nkubectl --context \"$CONTEXT\" get pods -l app=cordon-test\n```\n"
        );
        assert_eq!(lint(&text), Vec::<String>::new());
    }

    #[test]
    fn unknown_variables_are_reported_at_their_line() {
        let text = format!("{HEAD}```sh {{name=look}}\necho ok\necho \"$WHOO\"\n```\n");
        let f = lint(&text);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("t.md:10: step `look`: variable $WHOO"),
            "{f:?}"
        );
    }

    #[test]
    fn structure_rules_of_the_old_script_hold() {
        let f = lint("```sh\necho hi\n```\n");
        assert!(
            f.iter().any(|m| m.contains("no YAML front matter")),
            "{f:?}"
        );
        assert!(f.iter().any(|m| m.contains("has no name")), "{f:?}");
        let f = lint(
            "---\ntitle: T\nvars:\n  Bad:\n    prompt: x\n  PW:\n    secret: true\n    default: hunter2\n---\n```sh {name=Not_Kebab}\necho\n```\n",
        );
        for want in [
            "lacks `summary`",
            "UPPER_SNAKE",
            "must not have a default",
            "kebab-case",
        ] {
            assert!(f.iter().any(|m| m.contains(want)), "{want}: {f:?}");
        }
    }

    #[test]
    fn parse_errors_come_first_and_alone() {
        let f = lint(
            "---\ntitle: T\nsummary: S\n---\n```sh {name=x destuctive=true}\nkubectl get pods\n```\n",
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("did you mean `destructive`"), "{f:?}");
    }

    #[test]
    fn expanded_text_keeps_lines() {
        let t = bash_expanded_text("a '$X\n$Y'\n# $Z\ncat <<'EOF'\n$Q\nEOF\necho \"$R\"");
        assert_eq!(t.split('\n').count(), 7);
        let refs = var_refs(&t);
        assert_eq!(refs, [(6, "R".to_string())]);
    }
}
