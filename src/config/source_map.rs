//! Where things are in the config text: byte offsets to 1-based lines, key paths such as
//! `cluster[1].pgbouncer.password` to spans, and serde's errors rewritten into messages that name
//! the key and say what would be valid.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One key or array element of the document.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub path: String,
    /// The key itself; for an array element, the element (a `[[table]]` header or the value).
    pub key_span: Range<usize>,
    /// The value; for a table given by a header, just the header.
    pub value_span: Range<usize>,
    /// TOML type name ("string", "integer", ..., "table").
    pub kind: &'static str,
}

#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    line_starts: Vec<usize>,
    nodes: Vec<Node>,
    by_path: HashMap<String, usize>,
}

impl SourceMap {
    /// A map with lines only, for errors raised before the document parsed.
    pub fn lines_only(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self {
            line_starts,
            ..Self::default()
        }
    }

    pub fn new(text: &str, root: &DeTable<'_>) -> Self {
        let mut map = Self::lines_only(text);
        map.index_table(root, "");
        map
    }

    fn index_table(&mut self, table: &DeTable<'_>, parent: &str) {
        for (key, value) in table.iter() {
            let path = join_key(parent, key.get_ref());
            self.push(path.clone(), key.span(), value.span(), value.get_ref());
            self.index_value(value.get_ref(), &path);
        }
    }

    fn index_value(&mut self, value: &DeValue<'_>, path: &str) {
        match value {
            DeValue::Table(t) => self.index_table(t, path),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = join_index(path, i);
                    self.push(item_path.clone(), item.span(), item.span(), item.get_ref());
                    self.index_value(item.get_ref(), &item_path);
                }
            }
            _ => {}
        }
    }

    fn push(
        &mut self,
        path: String,
        key_span: Range<usize>,
        value_span: Range<usize>,
        v: &DeValue<'_>,
    ) {
        self.by_path.insert(path.clone(), self.nodes.len());
        self.nodes.push(Node {
            path,
            key_span,
            value_span,
            kind: v.type_str(),
        });
    }

    /// 1-based line of a byte offset (an offset past the end counts as the last line).
    pub fn line_of_offset(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .max(1)
    }

    /// Line of a key path; a path that is not in the file (a missing key) falls back to the
    /// closest parent that is, so "add it here" points at the right table.
    pub fn line_of_path(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(&i) = self.by_path.get(path) {
                return Some(self.line_of_offset(self.nodes[i].key_span.start));
            }
            path = &path[..parent_end(path)?];
        }
    }

    /// The node an error span points at: an exact value match (deepest first, because an
    /// array's span and its first element's header coincide), then an exact key match, then
    /// the smallest node containing it.
    fn node_for_span(&self, span: &Range<usize>) -> Option<&Node> {
        let deepest = |a: &&Node, b: &&Node| a.path.len().cmp(&b.path.len());
        self.nodes
            .iter()
            .filter(|n| n.value_span == *span)
            .max_by(deepest)
            .or_else(|| {
                self.nodes
                    .iter()
                    .filter(|n| n.key_span == *span)
                    .max_by(deepest)
            })
            .or_else(|| {
                self.nodes
                    .iter()
                    .filter(|n| n.value_span.contains(&span.start))
                    .min_by_key(|n| n.value_span.len())
            })
    }

    /// Rewrites a serde/TOML error as (line, key path, message).
    pub fn explain(&self, err: &toml::de::Error) -> (Option<usize>, String, String) {
        let message = err.message().replace('\n', "; ");
        let Some(span) = err.span() else {
            return (None, String::new(), message);
        };
        let line = Some(self.line_of_offset(span.start));
        let node = self.node_for_span(&span);
        let path = node.map(|n| n.path.clone()).unwrap_or_default();
        let found = node.map(|n| article(n.kind)).unwrap_or("something else");
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let valid = rest
                .split_once(", expected ")
                .map(|(_, list)| list.trim_start_matches("one of ").replace('`', ""));
            let message = match valid {
                Some(list) => format!("unknown key; valid keys here are: {list}"),
                None => "unknown key; this table takes no keys".to_string(),
            };
            return (line, path, message);
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.trim_end_matches('`');
            let message = match example_value(field) {
                Some(example) => format!("required key is missing; add {field} = {example}"),
                None => "required key is missing".to_string(),
            };
            return (line, join_key(&path, field), message);
        }
        if let Some(rest) = message.strip_prefix("invalid type: ")
            && let Some((_, expected)) = rest.rsplit_once(", expected ")
        {
            let message = format!("expected {}, found {found}", expected_in_toml(expected));
            return (line, path, message);
        }
        if let Some(rest) = message.strip_prefix("invalid value: integer `")
            && let Some((number, expected)) = rest.split_once("`, expected ")
        {
            let message = format!("expected {}, found {number}", expected_in_toml(expected));
            return (line, path, message);
        }
        if path.is_empty() {
            // Syntax errors: say it is TOML that broke, not opsdeck's schema.
            return (line, path, format!("invalid TOML: {message}"));
        }
        (line, path, message)
    }
}

/// An example for each required key, so "missing" also says what to write.
fn example_value(field: &str) -> Option<&'static str> {
    match field {
        "name" => Some("\"production\""),
        "cluster" => Some("\"staging\""),
        "target" => Some("\"monitoring/service/grafana:3000\""),
        _ => None,
    }
}

/// serde's "expected" wording in TOML terms.
fn expected_in_toml(expected: &str) -> String {
    match expected {
        "a boolean" => "a boolean (true or false)".to_string(),
        "u16" => "an integer from 0 to 65535".to_string(),
        "a sequence" => "an array".to_string(),
        "a map" => "a table".to_string(),
        e if e.starts_with("struct ") => "a table".to_string(),
        e => e.to_string(),
    }
}

pub(crate) fn article(kind: &str) -> &'static str {
    match kind {
        "string" => "a string",
        "integer" => "an integer",
        "float" => "a float",
        "boolean" => "a boolean",
        "datetime" => "a date-time",
        "array" => "an array",
        "table" => "a table",
        _ => "something else",
    }
}

/// Appends a key to a path, quoting it the way TOML would when it is not a bare key.
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

pub(crate) fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Where the parent of `path` ends, or None at the top.
fn parent_end(path: &str) -> Option<usize> {
    if path.ends_with(']') {
        return path.rfind('[');
    }
    // A quoted last key may itself contain dots.
    if let Some(unclosed) = path.strip_suffix('"') {
        let open = unclosed.rfind('"')?;
        return path[..open].strip_suffix('.').map(str::len);
    }
    path.rfind(['.', '[']).filter(|&i| i > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> SourceMap {
        let root = DeTable::parse(text).expect("test TOML parses");
        SourceMap::new(text, root.get_ref())
    }

    #[test]
    fn offsets_map_to_one_based_lines() {
        let m = SourceMap::lines_only("a = 1\r\nb = 2\n\nc = 3");
        assert_eq!(m.line_of_offset(0), 1);
        assert_eq!(m.line_of_offset(6), 1); // the \n of a CRLF belongs to its line
        assert_eq!(m.line_of_offset(7), 2);
        assert_eq!(m.line_of_offset(13), 3);
        assert_eq!(m.line_of_offset(14), 4);
        assert_eq!(m.line_of_offset(999), 4);
        assert_eq!(SourceMap::lines_only("").line_of_offset(0), 1);
    }

    #[test]
    fn key_paths_find_their_lines() {
        let text = "keymap = \"vim\"\n\n[[cluster]]\nname = \"a\"\n[cluster.env]\nX = \"1\"\n\n[[cluster]]\nname = \"b\"\nenv = { \"odd key\" = \"2\" }\n";
        let m = map(text);
        assert_eq!(m.line_of_path("keymap"), Some(1));
        assert_eq!(m.line_of_path("cluster[0]"), Some(3));
        assert_eq!(m.line_of_path("cluster[0].name"), Some(4));
        assert_eq!(m.line_of_path("cluster[0].env"), Some(5));
        assert_eq!(m.line_of_path("cluster[0].env.X"), Some(6));
        assert_eq!(m.line_of_path("cluster[1]"), Some(8));
        assert_eq!(m.line_of_path("cluster[1].env.\"odd key\""), Some(10));
        // Missing keys point at their table.
        assert_eq!(m.line_of_path("cluster[1].pgbouncer.url"), Some(8));
        assert_eq!(m.line_of_path("cluster[0].env.\"a.b\""), Some(5));
        assert_eq!(m.line_of_path("nothing"), None);
    }

    #[test]
    fn keys_are_quoted_when_not_bare() {
        assert_eq!(join_key("", "cluster"), "cluster");
        assert_eq!(
            join_key("cluster[0].env", "1 BAD"),
            "cluster[0].env.\"1 BAD\""
        );
        assert_eq!(join_index("cluster", 2), "cluster[2]");
    }
}
