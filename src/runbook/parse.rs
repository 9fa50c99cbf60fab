//! Markdown -> runbook: YAML front matter, and every `sh`/`bash`/`shell` fence as a step with
//! runme-style attributes. Other fences and all prose are kept for display, never run.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A declared variable (front matter `vars`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarDecl {
    pub name: String,
    pub prompt: String,
    pub default: Option<String>,
    pub secret: bool,
}

/// What a fence's attributes say about its step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepAttrs {
    pub destructive: bool,
    pub verify: bool,
    /// `host=true`: the step inspects or changes the machine itself (systemctl, df, the backup
    /// disk), so it runs only on the cluster's own `host`.
    pub host: bool,
    pub interactive: bool,
    pub timeout_s: Option<u64>,
    pub cwd: Option<String>,
    pub exclude_from_run_all: bool,
    pub background: bool,
    /// Keys opsdeck does not use, kept as written.
    pub other: BTreeMap<String, String>,
}

/// One runnable step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub number: usize,
    pub name: String,
    /// Whether the fence gave the name (else it was derived from the first command line).
    pub name_given: bool,
    /// The line of the opening fence in the file (1-based).
    pub line: usize,
    /// The heading above the fence.
    pub title: String,
    pub command: String,
    pub attrs: StepAttrs,
}

/// The runbook as displayed: prose and steps in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Markdown(String),
    Step(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runbook {
    pub name: String,
    pub title: String,
    pub summary: String,
    pub severity: Option<String>,
    pub targets: Vec<String>,
    pub vars: Vec<VarDecl>,
    pub steps: Vec<Step>,
    pub blocks: Vec<Block>,
    pub sha256: String,
}

/// A problem at one place of a runbook file: `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Step attributes opsdeck reads (runbooks.md).
pub const STEP_KEYS: [&str; 10] = [
    "name",
    "destructive",
    "host",
    "verify",
    "timeout",
    "interactive",
    "cwd",
    "excludeFromRunAll",
    "promptEnv",
    "background",
];

/// runme's other documented cell attributes: accepted and ignored, so runbooks written for
/// runme open here.
pub const RUNME_IGNORED_KEYS: [&str; 8] = [
    "id",
    "category",
    "terminalRows",
    "closeTerminalOnSuccess",
    "mimeType",
    "interpreter",
    "description",
    "skipPrompts",
];

/// The longest `timeout=` accepted, in seconds (7 days): far from any overflow of
/// `Duration`/`Instant` arithmetic.
pub const MAX_TIMEOUT_S: u64 = 7 * 86_400;

/// The closest of `candidates` to `word`, when it is a plausible typo (edit distance at most 2,
/// ignoring case).
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.min(c.len() / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[derive(Debug, Default, Deserialize)]
struct FrontMatter {
    title: Option<String>,
    summary: Option<String>,
    severity: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    vars: BTreeMap<String, RawVar>,
}

#[derive(Debug, Default, Deserialize)]
struct RawVar {
    prompt: Option<String>,
    default: Option<serde_json::Value>,
    #[serde(default)]
    secret: serde_json::Value,
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1")
}

/// A flag attribute: `true` or `false` (a typo such as `destructive=ture` must not read as
/// false).
fn flag(key: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{key}={v}: write {key}=true or {key}=false")),
    }
}

/// `timeout=` in whole seconds (a trailing `s` allowed), from 1 to [`MAX_TIMEOUT_S`].
fn timeout_secs(v: &str) -> Result<u64, String> {
    let digits = v.strip_suffix('s').unwrap_or(v);
    match digits.parse::<u64>() {
        Ok(n) if (1..=MAX_TIMEOUT_S).contains(&n) && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n)
        }
        _ => Err(format!(
            "timeout={v}: give whole seconds from 1 to {MAX_TIMEOUT_S} (7 days), e.g. timeout=600"
        )),
    }
}

/// Parses the attribute block of an info string, in either of runme's syntaxes:
/// `{name=x destructive=true}` or `{"name":"x","destructive":"true"}`.
pub fn parse_attrs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let text = text.trim();
    let mut out = BTreeMap::new();
    if text.is_empty() {
        return Ok(out);
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(k, v);
        }
        return Ok(out);
    }
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("attributes must be in braces: {text}"))?;
    let chars: Vec<char> = inner.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        let mut value = String::from("true");
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            value.clear();
            if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let quote = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("unclosed quote in attributes: {text}"));
                }
                i += 1;
            } else {
                while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ',' {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        let key = key.trim_matches('"').to_string();
        if key.is_empty() {
            return Err(format!("an attribute without a name: {text}"));
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// The step's attributes; every problem is collected (unknown keys with a suggestion).
fn attrs_from(map: BTreeMap<String, String>) -> Result<(Option<String>, StepAttrs), Vec<String>> {
    let mut a = StepAttrs::default();
    let mut name = None;
    let mut errors = Vec::new();
    let flag_into =
        |key: &str, v: &str, slot: &mut bool, errors: &mut Vec<String>| match flag(key, v) {
            Ok(b) => *slot = b,
            Err(e) => errors.push(e),
        };
    for (k, v) in map {
        match k.as_str() {
            "name" => name = Some(v),
            "destructive" => flag_into(&k, &v, &mut a.destructive, &mut errors),
            "verify" => flag_into(&k, &v, &mut a.verify, &mut errors),
            "host" => flag_into(&k, &v, &mut a.host, &mut errors),
            "interactive" => flag_into(&k, &v, &mut a.interactive, &mut errors),
            "excludeFromRunAll" => flag_into(&k, &v, &mut a.exclude_from_run_all, &mut errors),
            "background" => flag_into(&k, &v, &mut a.background, &mut errors),
            "cwd" => a.cwd = Some(v),
            "timeout" => match timeout_secs(&v) {
                Ok(secs) => a.timeout_s = Some(secs),
                Err(e) => errors.push(e),
            },
            k if k == "promptEnv" || RUNME_IGNORED_KEYS.contains(&k) => {
                a.other.insert(k.to_string(), v);
            }
            _ => {
                let all: Vec<&str> = STEP_KEYS
                    .iter()
                    .chain(RUNME_IGNORED_KEYS.iter())
                    .copied()
                    .collect();
                let hint = match suggest(&k, &all) {
                    Some(s) => format!("did you mean `{s}`? "),
                    None => String::new(),
                };
                errors.push(format!(
                    "unknown step attribute `{k}`: {hint}opsdeck reads {}; runme's {} are ignored",
                    STEP_KEYS.join(", "),
                    RUNME_IGNORED_KEYS.join(", ")
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok((name, a))
    } else {
        Err(errors)
    }
}

/// A step name from its first command line: `kubectl get pods -n x` -> `kubectl-get-pods-n-x`.
fn derive_name(command: &str) -> String {
    let first = command
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("step");
    let mut slug = String::new();
    for c in first.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 32 {
            break;
        }
    }
    let slug = slug.trim_matches('-').to_string();
    if slug.is_empty() { "step".into() } else { slug }
}

fn is_fence(line: &str) -> Option<(char, usize, &str)> {
    let t = line.trim_start();
    if line.len() - t.len() > 3 {
        return None;
    }
    let c = t.chars().next()?;
    if c != '`' && c != '~' {
        return None;
    }
    let n = t.chars().take_while(|&x| x == c).count();
    (n >= 3).then(|| (c, n, &t[n..]))
}

/// Parses a runbook. `name` is its file stem; errors read `NAME:LINE: message`.
pub fn parse(name: &str, text: &str) -> Result<Runbook, String> {
    parse_file(name, name, text).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// The line (1-based, in the whole file) where front matter declares variable `var`.
fn line_of_var(front: &str, var: &str) -> Option<usize> {
    front
        .lines()
        .position(|l| {
            let t = l.trim_start();
            l.len() > t.len()
                && t.trim_start_matches(['"', '\''])
                    .strip_prefix(var)
                    .is_some_and(|rest| {
                        rest.trim_start_matches(['"', '\''])
                            .trim_start()
                            .starts_with(':')
                    })
        })
        .map(|i| i + 2)
}

/// Parses a runbook read from `file` (named in errors). Every problem is reported: a bad
/// front matter, a reserved or malformed variable in `vars`, an unknown or malformed step
/// attribute, an out-of-range `timeout`, a step name given twice.
pub fn parse_file(name: &str, file: &str, text: &str) -> Result<Runbook, Vec<ParseError>> {
    let mut errors: Vec<ParseError> = Vec::new();
    let err = |line: usize, message: String| ParseError {
        file: file.to_string(),
        line,
        message,
    };
    let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
    let (front, body) = split_front_matter(text);
    let body_offset = text[..text.len() - body.len()].matches('\n').count();
    let fm: FrontMatter = match front {
        Some(y) if !y.trim().is_empty() => match serde_saphyr::from_str(y) {
            Ok(fm) => fm,
            Err(e) => {
                errors.push(err(1, format!("front matter: {e}")));
                FrontMatter::default()
            }
        },
        _ => FrontMatter::default(),
    };
    let mut vars = Vec::new();
    for (n, v) in fm.vars {
        if let Err(e) = super::vars::check_settable(&n) {
            let line = front.and_then(|f| line_of_var(f, &n)).unwrap_or(1);
            errors.push(err(
                line,
                format!("vars: {e}; a runbook cannot declare it (interfaces.md \"Reserved runbook variables\")"),
            ));
            continue;
        }
        let default = v.default.map(|d| match d {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        let secret = match &v.secret {
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::String(s) => truthy(s),
            _ => false,
        };
        vars.push(VarDecl {
            prompt: v.prompt.unwrap_or_else(|| n.clone()),
            name: n,
            default,
            secret,
        });
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut blocks = Vec::new();
    let mut prose = String::new();
    let mut heading = String::new();
    let mut first_heading: Option<String> = None;
    let mut lines = body.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line_no = body_offset + index + 1;
        if let Some((c, n, info)) = is_fence(line) {
            let info = info.trim();
            let (lang, rest) = info
                .split_once(|ch: char| ch.is_whitespace() || ch == '{')
                .map_or((info, ""), |(l, r)| (l, r));
            let rest_full = if info.len() > lang.len() {
                &info[lang.len()..]
            } else {
                rest
            };
            let mut code = String::new();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if let Some((c2, n2, after)) = is_fence(l)
                    && c2 == c
                    && n2 >= n
                    && after.trim().is_empty()
                {
                    closed = true;
                    break;
                }
                code.push_str(l);
                code.push('\n');
            }
            let runnable = matches!(lang.to_ascii_lowercase().as_str(), "sh" | "bash" | "shell")
                && c == '`'
                || matches!(lang, "sh" | "bash" | "shell");
            if runnable && closed {
                let parsed = parse_attrs(rest_full.trim())
                    .map_err(|e| vec![e])
                    .and_then(attrs_from);
                let (given, attrs) = match parsed {
                    Ok(p) => p,
                    Err(es) => {
                        errors.extend(es.into_iter().map(|e| err(line_no, e)));
                        (None, StepAttrs::default())
                    }
                };
                if !prose.trim().is_empty() {
                    blocks.push(Block::Markdown(std::mem::take(&mut prose)));
                }
                prose.clear();
                let name_given = given.is_some();
                let step_name = given.unwrap_or_else(|| derive_name(&code));
                steps.push(Step {
                    number: steps.len() + 1,
                    name: step_name,
                    name_given,
                    line: line_no,
                    title: heading.clone(),
                    command: code,
                    attrs,
                });
                blocks.push(Block::Step(steps.len() - 1));
            } else {
                prose.push_str(line);
                prose.push('\n');
                prose.push_str(&code);
                if closed {
                    prose.push_str(&line[..line.len() - line.trim_start().len()]);
                    prose.push_str(&c.to_string().repeat(n));
                    prose.push('\n');
                }
            }
            continue;
        }
        if let Some(h) = line.trim_start().strip_prefix('#') {
            let h = h.trim_start_matches('#').trim().to_string();
            if first_heading.is_none() {
                first_heading = Some(h.clone());
            }
            heading = h;
        }
        prose.push_str(line);
        prose.push('\n');
    }
    if !prose.trim().is_empty() {
        blocks.push(Block::Markdown(prose));
    }
    // Names are unique within a runbook: a name given twice is an error (`--from NAME` and the
    // audit log must mean one step); a derived name that repeats gets -2, -3, ...
    let mut given_at: HashMap<String, usize> = HashMap::new();
    for s in steps.iter().filter(|s| s.name_given) {
        if let Some(first) = given_at.get(&s.name) {
            errors.push(err(
                s.line,
                format!(
                    "duplicate step name `{}` (also at line {first}); step names are unique within a runbook",
                    s.name
                ),
            ));
        } else {
            given_at.insert(s.name.clone(), s.line);
        }
    }
    let mut seen: HashSet<String> = given_at.keys().cloned().collect();
    for s in &mut steps {
        if s.title.is_empty() {
            s.title = s.name.clone();
        }
        if s.name_given {
            continue;
        }
        let base = s.name.clone();
        let mut n = 2;
        while !seen.insert(s.name.clone()) {
            s.name = format!("{base}-{n}");
            n += 1;
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }
    Ok(Runbook {
        name: name.to_string(),
        title: fm
            .title
            .or(first_heading)
            .unwrap_or_else(|| name.to_string()),
        summary: fm.summary.unwrap_or_default(),
        severity: fm.severity,
        targets: fm.targets,
        vars,
        steps,
        blocks,
        sha256,
    })
}

pub(crate) fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, text)
}

impl Runbook {
    /// A step by number (1-based) or name.
    pub fn find_step(&self, which: &str) -> Option<usize> {
        if let Ok(n) = which.parse::<usize>() {
            return (n >= 1 && n <= self.steps.len()).then(|| n - 1);
        }
        self.steps.iter().position(|s| s.name == which)
    }

    /// Names of the declared variables a step's command refers to (`$NAME` or `${NAME...}`).
    pub fn vars_used_by(&self, step: &Step) -> Vec<&VarDecl> {
        self.vars
            .iter()
            .filter(|v| refers_to(&step.command, &v.name))
            .collect()
    }
}

/// Whether `command` refers to `$name` or `${name...}`.
pub fn refers_to(command: &str, name: &str) -> bool {
    let bytes = command.as_bytes();
    let mut from = 0;
    while let Some(pos) = command[from..].find('$') {
        let at = from + pos + 1;
        let rest = &command[at..];
        let candidate = rest.strip_prefix('{').unwrap_or(rest);
        if let Some(after) = candidate.strip_prefix(name) {
            let next = after.as_bytes().first().copied();
            if !next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return true;
            }
        }
        from = at;
        if from >= bytes.len() {
            break;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"---
title: Restore Postgres
summary: Bring the database back from a backup
severity: critical
targets: [staging, production]
vars:
  BACKUP_FILE:
    prompt: Which backup file?
    default: latest
  PGPASSWORD:
    prompt: Postgres password
    secret: true
---
# Restore

Some prose.

## Check the pods

```sh {name=check-pods}
kubectl --context "$CONTEXT" get pods -n database
```

## Scale down

```bash {"name":"scale-down","destructive":"true","timeout":"600"}
kubectl --context "$CONTEXT" scale deploy/x --replicas=0
```

```yaml
not: run
```

```sh
echo "$BACKUP_FILE"
```

```shell {verify=true}
kubectl --context "$CONTEXT" get pods
```
"#;

    #[test]
    fn front_matter_steps_and_attributes_in_both_syntaxes() {
        let rb = parse("restore-postgres", SAMPLE).unwrap();
        assert_eq!(rb.title, "Restore Postgres");
        assert_eq!(rb.targets, ["staging", "production"]);
        assert_eq!(rb.vars.len(), 2);
        let pw = rb.vars.iter().find(|v| v.name == "PGPASSWORD").unwrap();
        assert!(pw.secret);
        let names: Vec<_> = rb.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "check-pods",
                "scale-down",
                "echo-backup-file",
                "kubectl-context-context-get-pods"
            ]
        );
        assert!(rb.steps[1].attrs.destructive);
        assert_eq!(rb.steps[1].attrs.timeout_s, Some(600));
        assert_eq!(rb.steps[1].title, "Scale down");
        assert!(rb.steps[3].attrs.verify);
        assert!(
            rb.blocks
                .iter()
                .any(|b| matches!(b, Block::Markdown(m) if m.contains("not: run"))),
            "yaml fence is shown"
        );
        assert_eq!(rb.vars_used_by(&rb.steps[2]).len(), 1);
        assert_eq!(rb.find_step("2"), Some(1));
        assert_eq!(rb.find_step("scale-down"), Some(1));
        assert_eq!(rb.find_step("9"), None);
    }

    #[test]
    fn runme_keys_are_kept_and_ignored() {
        let rb = parse(
            "x",
            "```sh {name=a id=01HF category=db promptEnv=false terminalRows=20}\ntrue\n```\n",
        )
        .unwrap();
        assert_eq!(
            rb.steps[0].attrs.other.get("category").map(String::as_str),
            Some("db")
        );
        assert_eq!(rb.steps[0].line, 1);
        assert!(rb.steps[0].name_given);
    }

    #[test]
    fn an_unknown_attribute_is_an_error_with_a_suggestion_at_its_line() {
        let text = "---\ntitle: T\n---\n# T\n\n```sh {name=a destuctive=true}\ntrue\n```\n";
        let e = parse_file("t", "runbooks/t.md", text).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        let msg = e[0].to_string();
        assert!(
            msg.starts_with(
                "runbooks/t.md:6: unknown step attribute `destuctive`: did you mean `destructive`?"
            ),
            "{msg}"
        );
        let e = parse("t", "```sh {name=a foo=bar}\ntrue\n```\n").unwrap_err();
        assert!(e.contains("`foo`") && !e.contains("did you mean"), "{e}");
    }

    #[test]
    fn a_flag_with_a_typo_is_an_error_not_false() {
        let e = parse("t", "```sh {destructive=ture}\ntrue\n```\n").unwrap_err();
        assert!(e.contains("destructive=true or destructive=false"), "{e}");
    }

    #[test]
    fn out_of_range_timeouts_are_errors_naming_file_and_line() {
        for t in [
            "0",
            "-1",
            "soon",
            "604801",
            "18446744073709551615",
            "99999999999999999999",
            "1.5",
        ] {
            let text = format!("# x\n\n```sh {{name=a timeout={t}}}\ntrue\n```\n");
            let e = parse("rb", &text).unwrap_err();
            assert!(e.starts_with("rb:3: timeout="), "{t}: {e}");
        }
        for (t, secs) in [("1", 1), ("600s", 600), ("604800", 604_800)] {
            let text = format!("```sh {{timeout={t}}}\ntrue\n```\n");
            assert_eq!(
                parse("rb", &text).unwrap().steps[0].attrs.timeout_s,
                Some(secs)
            );
        }
    }

    #[test]
    fn reserved_variables_cannot_be_declared() {
        for name in [
            "CONTEXT",
            "OPSDECK_ENV",
            "KUBECONFIG",
            "BASH_ENV",
            "LD_PRELOAD",
        ] {
            let text = format!(
                "---\ntitle: T\nvars:\n  OK:\n    prompt: fine\n  {name}:\n    prompt: which?\n    secret: true\n---\n```sh\ntrue\n```\n"
            );
            let e = parse_file("t", "t.md", &text).unwrap_err();
            assert_eq!(e.len(), 1, "{e:?}");
            assert_eq!(e[0].line, 6, "{name}: {e:?}");
            assert!(e[0].message.contains(name), "{e:?}");
        }
    }

    #[test]
    fn a_step_name_given_twice_is_an_error() {
        let e = parse(
            "t",
            "```sh {name=a}\ntrue\n```\n\n```sh {name=a}\ntrue\n```\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("t:5: duplicate step name `a` (also at line 1)"),
            "{e}"
        );
        // Derived names never clash with given ones.
        let rb = parse("t", "```sh {name=true}\ntrue\n```\n\n```sh\ntrue\n```\n").unwrap();
        assert_eq!(rb.steps[1].name, "true-2");
    }

    #[test]
    fn suggestions_are_for_near_misses_only() {
        assert_eq!(suggest("destuctive", &STEP_KEYS), Some("destructive"));
        assert_eq!(suggest("timout", &STEP_KEYS), Some("timeout"));
        assert_eq!(
            suggest("excludefromrunall", &STEP_KEYS),
            Some("excludeFromRunAll")
        );
        assert_eq!(suggest("foo", &STEP_KEYS), None);
    }

    #[test]
    fn refers_to_matches_whole_names_only() {
        assert!(refers_to("echo \"$BACKUP_FILE\"", "BACKUP_FILE"));
        assert!(refers_to("echo ${BACKUP_FILE:-x}", "BACKUP_FILE"));
        assert!(!refers_to("echo $BACKUP_FILES", "BACKUP_FILE"));
        assert!(!refers_to("echo BACKUP_FILE", "BACKUP_FILE"));
    }

    #[test]
    fn a_bad_timeout_is_an_error_naming_the_runbook() {
        let e = parse("rb", "```sh {timeout=soon}\ntrue\n```\n").unwrap_err();
        assert!(e.starts_with("rb:") && e.contains("timeout"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in "(?s).{0,400}") {
            let _ = parse("fuzz", &text);
        }

        #[test]
        fn parsing_fences_and_braces_never_panics(parts in proptest::collection::vec(proptest::sample::select(vec![
            "```sh", "```", "~~~bash", "{", "}", "name=", "\"", "'", "---\n", "\n", "# h", "x", " ", "=", ","]), 0..40)) {
            let text: String = parts.concat();
            let _ = parse("fuzz", &text);
        }
    }
}
