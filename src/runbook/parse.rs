//! Markdown -> runbook: YAML front matter, and every `sh`/`bash`/`shell` fence as a step with
//! runme-style attributes. Other fences and all prose are kept for display, never run.

use std::collections::{BTreeMap, HashSet};

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

fn attrs_from(map: BTreeMap<String, String>) -> Result<(Option<String>, StepAttrs), String> {
    let mut a = StepAttrs::default();
    let mut name = None;
    for (k, v) in map {
        match k.as_str() {
            "name" => name = Some(v),
            "destructive" => a.destructive = truthy(&v),
            "verify" => a.verify = truthy(&v),
            "interactive" => a.interactive = truthy(&v),
            "excludeFromRunAll" => a.exclude_from_run_all = truthy(&v),
            "background" => a.background = truthy(&v),
            "cwd" => a.cwd = Some(v),
            "timeout" => {
                let secs = v
                    .trim_end_matches('s')
                    .parse::<u64>()
                    .map_err(|_| format!("timeout={v}: give whole seconds, e.g. timeout=600"))?;
                a.timeout_s = Some(secs);
            }
            _ => {
                a.other.insert(k, v);
            }
        }
    }
    Ok((name, a))
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

/// Parses a runbook. `name` is its file stem.
pub fn parse(name: &str, text: &str) -> Result<Runbook, String> {
    let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
    let (front, body) = split_front_matter(text);
    let fm: FrontMatter = match front {
        Some(y) if !y.trim().is_empty() => {
            serde_saphyr::from_str(y).map_err(|e| format!("{name}: front matter: {e}"))?
        }
        _ => FrontMatter::default(),
    };
    let vars = fm
        .vars
        .into_iter()
        .map(|(n, v)| {
            let default = v.default.map(|d| match d {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
            let secret = match &v.secret {
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::String(s) => truthy(s),
                _ => false,
            };
            VarDecl {
                prompt: v.prompt.unwrap_or_else(|| n.clone()),
                name: n,
                default,
                secret,
            }
        })
        .collect();
    let mut steps: Vec<Step> = Vec::new();
    let mut blocks = Vec::new();
    let mut prose = String::new();
    let mut heading = String::new();
    let mut first_heading: Option<String> = None;
    let mut lines = body.lines();
    while let Some(line) = lines.next() {
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
            for l in lines.by_ref() {
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
                let (given, attrs) =
                    attrs_from(parse_attrs(rest_full.trim()).map_err(|e| format!("{name}: {e}"))?)
                        .map_err(|e| format!("{name}: {e}"))?;
                if !prose.trim().is_empty() {
                    blocks.push(Block::Markdown(std::mem::take(&mut prose)));
                }
                prose.clear();
                let step_name = given.unwrap_or_else(|| derive_name(&code));
                steps.push(Step {
                    number: steps.len() + 1,
                    name: step_name,
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
    // Names are unique within a runbook: later duplicates get -2, -3, ...
    let mut seen = HashSet::new();
    for s in &mut steps {
        if s.title.is_empty() {
            s.title = s.name.clone();
        }
        let base = s.name.clone();
        let mut n = 2;
        while !seen.insert(s.name.clone()) {
            s.name = format!("{base}-{n}");
            n += 1;
        }
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

fn split_front_matter(text: &str) -> (Option<&str>, &str) {
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

```shell {verify=true name='check-pods'}
true
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
                "check-pods-2"
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
    fn unknown_attribute_keys_are_kept_and_ignored() {
        let rb = parse("x", "```sh {name=a foo=bar promptEnv=false}\ntrue\n```\n").unwrap();
        assert_eq!(
            rb.steps[0].attrs.other.get("foo").map(String::as_str),
            Some("bar")
        );
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
