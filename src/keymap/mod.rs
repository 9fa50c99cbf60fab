//! Keymaps as data: key strings parsed into [`Key`]s, bound per mode to named [`Action`]s.
//! The embedded `keymaps/*.toml` are the defaults; a user file is merged over them, and a broken
//! user file is reported and ignored rather than leaving the console without keys.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::app::action::Action;

/// Keymaps shipped inside the binary, by name.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("default", include_str!("../../keymaps/default.toml")),
    ("vim", include_str!("../../keymaps/vim.toml")),
];

/// A key the terminal can report. Independent of the terminal library so keymaps are testable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyCode {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Delete,
    F(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
    /// Only for non-character keys; a shifted character is its own `Char`.
    pub shift: bool,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key {
            code,
            ctrl: false,
            alt: false,
            shift: false,
        }
    }

    pub const fn ch(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    pub const fn ctrl(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            ctrl: true,
            alt: false,
            shift: false,
        }
    }
}

const NAMED: &[(&str, KeyCode)] = &[
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pgup", KeyCode::PageUp),
    ("pgdown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("delete", KeyCode::Delete),
    ("space", KeyCode::Char(' ')),
];

impl std::str::FromStr for Key {
    type Err = String;

    fn from_str(s: &str) -> Result<Key, String> {
        let mut key = Key::plain(KeyCode::Enter);
        let mut rest = s;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                key.ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                key.alt = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("shift-") {
                key.shift = true;
                rest = r;
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        key.code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => {
                if let Some((_, code)) = NAMED.iter().find(|(n, _)| *n == rest) {
                    *code
                } else if let Some(n) = rest
                    .strip_prefix('f')
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| (1..=12).contains(n))
                {
                    KeyCode::F(n)
                } else {
                    return Err(format!(
                        "unknown key {s:?}: use one character, or one of {}, f1..f12, with optional ctrl-/alt-/shift-",
                        NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        };
        if key.shift && key.code == KeyCode::Tab {
            key = Key::plain(KeyCode::BackTab);
        }
        if let KeyCode::Char(c) = key.code
            && key.shift
        {
            key.shift = false;
            key.code = KeyCode::Char(c.to_ascii_uppercase());
        }
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        if self.shift {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "f{n}"),
            code => f.write_str(
                NAMED
                    .iter()
                    .find(|(_, c)| *c == code)
                    .map_or("?", |(n, _)| n),
            ),
        }
    }
}

/// Where a binding applies. `Global` bindings apply in every mode that does not bind the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    Global,
    Overview,
    List,
    Runbook,
    Argocd,
    Pods,
    Pod,
    Logs,
    Workloads,
    Help,
}

impl Mode {
    pub const ALL: &'static [Mode] = &[
        Mode::Global,
        Mode::Overview,
        Mode::List,
        Mode::Runbook,
        Mode::Argocd,
        Mode::Pods,
        Mode::Pod,
        Mode::Logs,
        Mode::Workloads,
        Mode::Help,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Global => "global",
            Mode::Overview => "overview",
            Mode::List => "list",
            Mode::Runbook => "runbook",
            Mode::Argocd => "argocd",
            Mode::Pods => "pods",
            Mode::Pod => "pod",
            Mode::Logs => "logs",
            Mode::Workloads => "workloads",
            Mode::Help => "help",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.iter().copied().find(|m| m.name() == s)
    }
}

/// Which key a footer hint shows first: a plain named key (tab, enter, esc), then a plain
/// character, then anything with a modifier.
fn hint_rank(k: &Key) -> u8 {
    match (k.ctrl || k.alt || k.shift, k.code) {
        (false, KeyCode::Char(_)) => 1,
        (false, _) => 0,
        (true, _) => 2,
    }
}

/// The active bindings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keymap {
    bindings: BTreeMap<Mode, BTreeMap<Key, Action>>,
    /// Multi-key bindings (`"g g"`), two keys or more.
    sequences: BTreeMap<Mode, BTreeMap<Vec<Key>, Action>>,
}

/// What a key means given the keys pressed before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Action(Action),
    /// The keys so far start one or more sequences: wait for the next key.
    Prefix,
    None,
}

/// `g g`, `ctrl-c`: keys of a binding as the help and footers show them.
pub fn keys_text(keys: &[Key]) -> String {
    keys.iter()
        .map(Key::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Keymap {
    /// Parses one keymap file's text. Errors name the mode and key.
    pub fn parse(text: &str) -> Result<Keymap, String> {
        let mut km = Keymap::default();
        km.merge_text(text)?;
        Ok(km)
    }

    /// Merges `text` over these bindings; `"none"` removes a binding.
    pub fn merge_text(&mut self, text: &str) -> Result<(), String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut added_single = std::collections::BTreeSet::new();
        let mut added_seq = std::collections::BTreeSet::new();
        for (mode_name, entries) in table {
            let mode = Mode::parse(&mode_name).ok_or_else(|| {
                let modes: Vec<_> = Mode::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown mode [{mode_name}]; modes are: {}",
                    modes.join(", ")
                )
            })?;
            let toml::Value::Table(entries) = entries else {
                return Err(format!(
                    "[{mode_name}] must be a table of \"KEY\" = \"action\""
                ));
            };
            for (key_str, action) in entries {
                let keys: Vec<Key> = key_str
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("[{mode_name}] {e}"))?;
                let toml::Value::String(action) = action else {
                    return Err(format!(
                        "[{mode_name}] {key_str:?}: the action must be a string"
                    ));
                };
                let action = if action == "none" {
                    None
                } else {
                    Some(
                        action
                            .parse::<Action>()
                            .map_err(|e| format!("[{mode_name}] {key_str:?}: {e}"))?,
                    )
                };
                if action.is_some() {
                    match keys.as_slice() {
                        [k] => {
                            added_single.insert((mode, *k));
                        }
                        _ => {
                            added_seq.insert((mode, keys.clone()));
                        }
                    }
                }
                match (keys.as_slice(), action) {
                    ([], _) => return Err(format!("[{mode_name}] an empty key")),
                    ([key], None) => {
                        self.bindings.entry(mode).or_default().remove(key);
                    }
                    ([key], Some(a)) => {
                        self.bindings.entry(mode).or_default().insert(*key, a);
                    }
                    (_, None) => {
                        self.sequences.entry(mode).or_default().remove(&keys);
                    }
                    (_, Some(a)) => {
                        self.sequences.entry(mode).or_default().insert(keys, a);
                    }
                }
            }
        }
        // A key cannot both act at once and start a sequence in the same mode. Across layers the
        // newer one wins (vim's `g g` replaces the default `g`); within one file it is an error.
        let mut conflicts = Vec::new();
        for (mode, seqs) in &self.sequences {
            for (seq, _) in seqs.iter() {
                let first = seq[0];
                if self
                    .bindings
                    .get(mode)
                    .is_some_and(|b| b.contains_key(&first))
                {
                    conflicts.push((*mode, first, seq.clone()));
                }
            }
        }
        for (mode, first, seq) in conflicts {
            let single_here = added_single.contains(&(mode, first));
            let seq_here = added_seq.contains(&(mode, seq.clone()));
            match (single_here, seq_here) {
                (true, true) => {
                    return Err(format!(
                        "[{}] \"{first}\" is both a binding and the start of a sequence; unbind one",
                        mode.name()
                    ));
                }
                (true, false) => {
                    self.sequences.entry(mode).or_default().remove(&seq);
                }
                _ => {
                    self.bindings.entry(mode).or_default().remove(&first);
                }
            }
        }
        Ok(())
    }

    /// Resolves `key` after the `pending` keys of a sequence: the mode's bindings first, then
    /// the global ones.
    pub fn resolve(&self, mode: Mode, pending: &[Key], key: Key) -> Resolved {
        let mut seq = pending.to_vec();
        seq.push(key);
        for m in [mode, Mode::Global] {
            if seq.len() == 1
                && let Some(a) = self.bindings.get(&m).and_then(|b| b.get(&key))
            {
                return Resolved::Action(*a);
            }
            let seqs = self.sequences.get(&m);
            if seq.len() > 1
                && let Some(a) = seqs.and_then(|s| s.get(&seq))
            {
                return Resolved::Action(*a);
            }
            if seqs.is_some_and(|s| s.keys().any(|k| k.len() > seq.len() && k.starts_with(&seq))) {
                return Resolved::Prefix;
            }
        }
        Resolved::None
    }

    /// What may follow the `pending` keys, for the which-key hint: (the rest of the keys, action).
    pub fn continuations(&self, mode: Mode, pending: &[Key]) -> Vec<(String, Action)> {
        let mut out: Vec<(String, Action)> = [mode, Mode::Global]
            .iter()
            .filter_map(|m| self.sequences.get(m))
            .flat_map(|s| s.iter())
            .filter(|(k, _)| k.len() > pending.len() && k.starts_with(pending))
            .map(|(k, a)| (keys_text(&k[pending.len()..]), *a))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup();
        out
    }

    /// The embedded keymap called `name`, or a keymap file at that path, with the user's
    /// overrides file merged on top. Problems come back as warnings, never as a console without keys.
    pub fn load(name_or_path: &str, user_overrides: Option<&Path>) -> (Keymap, Vec<String>) {
        let mut warnings = Vec::new();
        let default = Keymap::parse(EMBEDDED[0].1).unwrap_or_default();
        let mut km = match EMBEDDED.iter().find(|(n, _)| *n == name_or_path) {
            // Another embedded keymap (vim) is laid over the default one, so a view it does
            // not mention keeps its default keys.
            Some((_, text)) => {
                let mut km = default.clone();
                match km.merge_text(text) {
                    Ok(()) => km,
                    Err(e) => {
                        warnings.push(format!("embedded keymap {name_or_path}: {e}"));
                        default.clone()
                    }
                }
            }
            None => match std::fs::read_to_string(name_or_path) {
                Ok(text) => {
                    let mut km = default.clone();
                    match km.merge_text(&text) {
                        Ok(()) => km,
                        Err(e) => {
                            warnings.push(format!(
                                "keymap {name_or_path}: {e}; using the default keymap"
                            ));
                            default.clone()
                        }
                    }
                }
                Err(e) => {
                    warnings.push(format!(
                        "keymap {name_or_path}: {e}; using the default keymap"
                    ));
                    default.clone()
                }
            },
        };
        if let Some(path) = user_overrides
            && let Ok(text) = std::fs::read_to_string(path)
        {
            let mut merged = km.clone();
            match merged.merge_text(&text) {
                Ok(()) => km = merged,
                Err(e) => warnings.push(format!(
                    "{}: {e}; your overrides were ignored",
                    path.display()
                )),
            }
        }
        (km, warnings)
    }

    /// `$XDG_CONFIG_HOME/opsdeck/keymap.toml` (or `~/.config/...`).
    pub fn user_overrides_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("opsdeck").join("keymap.toml"))
    }

    /// The action `key` triggers in `mode` (the mode's own binding first, then global).
    pub fn lookup(&self, mode: Mode, key: Key) -> Option<Action> {
        self.bindings
            .get(&mode)
            .and_then(|m| m.get(&key))
            .or_else(|| self.bindings.get(&Mode::Global).and_then(|m| m.get(&key)))
            .copied()
    }

    /// The keys bound to `action` in `mode` (or globally), for footers: single keys first.
    pub fn keys_for(&self, mode: Mode, action: Action) -> Vec<String> {
        let mut keys: Vec<Key> = [mode, Mode::Global]
            .iter()
            .filter_map(|m| self.bindings.get(m))
            .flat_map(|b| b.iter().filter(|(_, a)| **a == action).map(|(k, _)| *k))
            .filter(|k| self.lookup(mode, *k) == Some(action))
            .collect();
        keys.sort_by_key(|k| (hint_rank(k), *k));
        keys.dedup();
        let mut out: Vec<String> = keys.iter().map(Key::to_string).collect();
        for m in [mode, Mode::Global] {
            if let Some(s) = self.sequences.get(&m) {
                out.extend(
                    s.iter()
                        .filter(|(_, a)| **a == action)
                        .map(|(k, _)| keys_text(k)),
                );
            }
        }
        out
    }

    /// Every binding, grouped by mode and action, for the help screen.
    pub fn help_entries(&self) -> Vec<(Mode, Action, Vec<String>)> {
        let mut out = Vec::new();
        for mode in Mode::ALL {
            let single = self.bindings.get(mode);
            let multi = self.sequences.get(mode);
            for action in Action::ALL {
                let mut keys: Vec<Key> = single
                    .into_iter()
                    .flatten()
                    .filter(|(_, a)| *a == action)
                    .map(|(k, _)| *k)
                    .collect();
                keys.sort_by_key(|k| (k.to_string().len(), *k));
                let mut texts: Vec<String> = keys.iter().map(Key::to_string).collect();
                texts.extend(
                    multi
                        .into_iter()
                        .flatten()
                        .filter(|(_, a)| *a == action)
                        .map(|(k, _)| keys_text(k)),
                );
                if !texts.is_empty() {
                    out.push((*mode, *action, texts));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_strings_parse_and_print_back() {
        for s in [
            "q", "G", "?", "ctrl-c", "enter", "backtab", "pgdown", "f5", "alt-x", "space",
        ] {
            let k: Key = s.parse().unwrap();
            assert_eq!(k.to_string(), s);
        }
        assert_eq!(
            "shift-tab".parse::<Key>().unwrap(),
            Key::plain(KeyCode::BackTab)
        );
        assert_eq!("shift-g".parse::<Key>().unwrap(), Key::ch('G'));
        assert!(
            "hyper-q"
                .parse::<Key>()
                .unwrap_err()
                .contains("unknown key")
        );
    }

    #[test]
    fn mode_binding_wins_over_global_and_none_unbinds() {
        let mut km =
            Keymap::parse("[global]\n\"q\" = \"quit\"\n[list]\n\"q\" = \"back\"\n").unwrap();
        assert_eq!(km.lookup(Mode::List, Key::ch('q')), Some(Action::Back));
        assert_eq!(km.lookup(Mode::Overview, Key::ch('q')), Some(Action::Quit));
        km.merge_text("[global]\n\"q\" = \"none\"\n").unwrap();
        assert_eq!(km.lookup(Mode::Overview, Key::ch('q')), None);
    }

    #[test]
    fn unknown_action_or_mode_is_an_error_naming_it() {
        let e = Keymap::parse("[global]\n\"x\" = \"explode\"\n").unwrap_err();
        assert!(e.contains("\"x\"") && e.contains("explode"), "{e}");
        let e = Keymap::parse("[sideways]\n\"x\" = \"quit\"\n").unwrap_err();
        assert!(e.contains("sideways"), "{e}");
    }

    #[test]
    fn broken_user_overrides_fall_back_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keymap.toml");
        std::fs::write(&path, "[global]\n\"x\" = \"explode\"\n").unwrap();
        let (km, warnings) = Keymap::load("default", Some(&path));
        assert_eq!(km.lookup(Mode::Overview, Key::ch('q')), Some(Action::Quit));
        assert_eq!(warnings.len(), 1);
        std::fs::write(&path, "[global]\n\"x\" = \"quit\"\n").unwrap();
        let (km, warnings) = Keymap::load("default", Some(&path));
        assert!(warnings.is_empty());
        assert_eq!(km.lookup(Mode::List, Key::ch('x')), Some(Action::Quit));
    }
}
