//! The one confirmation overlay: "show exactly what will happen, ask, then do exactly that".
//!
//! A [`Confirm`] holds the exact [`Effect`] it emits when accepted; what it shows (the target
//! cluster and context, the action, the whole command, the variables) is drawn from that effect
//! and from the values the run really exports, so the reducer can only emit what the engineer
//! saw. Keys typed before the overlay was first drawn are dropped (it is *armed* by
//! [`Event::Drawn`](super::Event::Drawn)), so the key that opened it cannot also confirm it.

use ratatui_textarea::TextArea;

use super::action::Action;
use super::state::AppState;
use super::update::Effect;
use crate::keymap::{Key, KeyCode, Mode};
use crate::runbook::session::RunCommand;

/// What accepting needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// One key: `y`.
    Key,
    /// This text typed exactly (a cluster's or a workload's name), then enter.
    Typed(String),
}

/// The cluster an action reaches, as shown in the overlay's fixed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmTarget {
    pub cluster: String,
    pub context: String,
    pub protected: bool,
}

/// One entry of a choice the overlay offers (a rollback's history entry), with the exact
/// effect accepting emits when it is the chosen one.
#[derive(Debug, Clone)]
pub struct Choice {
    pub label: String,
    pub effect: Effect,
}

/// A confirmation waiting for the engineer.
#[derive(Debug, Clone)]
pub struct Confirm {
    /// The box's title.
    pub title: String,
    /// Where it acts; `None` while the run's real target is not known yet.
    pub target: Option<ConfirmTarget>,
    /// What will happen, in words, above the command.
    pub lines: Vec<String>,
    /// `NAME=value` lines (secrets already `***`), shown below the command.
    pub vars: Vec<(String, String)>,
    /// Choices (newest first); `choice` indexes it and `effect` is the chosen one's.
    pub choices: Vec<Choice>,
    pub choice: usize,
    pub proof: Proof,
    /// The field the `Typed` proof is typed into.
    pub input: TextArea<'static>,
    pub error: Option<String>,
    /// Why accepting is not possible yet (e.g. waiting for the executor); `None` when it is.
    pub waiting: Option<String>,
    /// First line of the scrollable body shown (the view clamps it).
    pub scroll: usize,
    /// Whether the overlay has been drawn since it opened or last changed: until then every
    /// key is dropped (a key typed before the engineer could see it confirms nothing).
    pub armed: bool,
    /// Exactly what accepting emits.
    pub effect: Effect,
    /// Said when the engineer cancels (esc) or declines (`n`).
    pub cancelled: String,
    pub declined: String,
}

impl Confirm {
    pub fn new(title: impl Into<String>, proof: Proof, effect: Effect) -> Confirm {
        Confirm {
            title: title.into(),
            target: None,
            lines: Vec::new(),
            vars: Vec::new(),
            choices: Vec::new(),
            choice: 0,
            proof,
            input: TextArea::default(),
            error: None,
            waiting: None,
            scroll: 0,
            armed: false,
            effect,
            cancelled: "cancelled; nothing was done".into(),
            declined: "declined; nothing was done".into(),
        }
    }

    pub fn target(mut self, target: ConfirmTarget) -> Confirm {
        self.target = Some(target);
        self
    }

    pub fn lines(mut self, lines: Vec<String>) -> Confirm {
        self.lines = lines;
        self
    }

    pub fn vars(mut self, vars: Vec<(String, String)>) -> Confirm {
        self.vars = vars;
        self
    }

    pub fn messages(
        mut self,
        cancelled: impl Into<String>,
        declined: impl Into<String>,
    ) -> Confirm {
        self.cancelled = cancelled.into();
        self.declined = declined.into();
        self
    }

    pub fn choices(mut self, choices: Vec<Choice>, chosen: usize) -> Confirm {
        self.choice = chosen.min(choices.len().saturating_sub(1));
        if let Some(c) = choices.get(self.choice) {
            self.effect = c.effect.clone();
        }
        self.choices = choices;
        self
    }

    /// Whether accepting needs a typed text (the overlay then has a text field).
    pub fn typed(&self) -> bool {
        matches!(self.proof, Proof::Typed(_))
    }

    /// The whole command the effect will run, when it runs one: read from the effect itself.
    pub fn command(&self) -> Option<&str> {
        match &self.effect {
            Effect::Runbook(RunCommand::Step { command, .. }) => Some(command),
            _ => None,
        }
    }

    /// The word the accept key's hint uses.
    pub fn verb(&self) -> &'static str {
        match &self.effect {
            Effect::Runbook(_) => "run",
            Effect::Quit => "quit",
            _ => "go",
        }
    }

    /// What is shown changed: the engineer must see it before a key counts again.
    pub fn changed(&mut self) {
        self.armed = false;
        self.error = None;
    }
}

/// Puts `confirm` up, replacing any other confirmation.
pub fn open(state: &mut AppState, confirm: Confirm) {
    state.confirm = Some(confirm);
}

/// Where a cancelled/declined confirmation says so: runbook steps in the run's notice line,
/// everything else in the footer.
fn say(state: &mut AppState, effect: &Effect, text: String) {
    match (effect, state.run.as_mut()) {
        (Effect::Runbook(_), Some(view)) => view.notice = Some(text),
        _ => state.flash = Some(text),
    }
}

/// Keys while the overlay is up: they never reach the keymap's actions.
pub fn key(state: &mut AppState, key: Key) -> Vec<Effect> {
    let Some(mut c) = state.confirm.take() else {
        return vec![];
    };
    if !c.armed {
        // Typed before the overlay was on screen: it confirms (and cancels) nothing.
        state.confirm = Some(c);
        return vec![];
    }
    if key == Key::plain(KeyCode::Esc) || key == Key::ctrl('c') {
        say(state, &c.effect, c.cancelled.clone());
        return vec![];
    }
    let nav = navigation(state, &c, key);
    if let Some(action) = nav {
        let (w, h) = state.screen;
        let max = c.geometry(w, h.saturating_sub(1)).max_scroll;
        move_view(&mut c, action, max);
        state.confirm = Some(c);
        return vec![];
    }
    match c.proof.clone() {
        Proof::Key => match key {
            k if k == Key::ch('y') => return accept(state, c),
            k if k == Key::ch('n') => {
                say(state, &c.effect, c.declined.clone());
                return vec![];
            }
            k if k == Key::plain(KeyCode::Enter) => {
                c.error = Some("press y to go ahead, or n / esc to cancel".into());
            }
            _ if state.keymap.lookup(Mode::List, key) == Some(Action::Back) => {
                say(state, &c.effect, c.cancelled.clone());
                return vec![];
            }
            _ => {}
        },
        Proof::Typed(expected) => {
            if key == Key::plain(KeyCode::Enter) {
                let typed = c.input.lines().join("");
                if typed.trim() == expected {
                    return accept(state, c);
                }
                c.error = Some(format!("type {expected} exactly, or esc to cancel"));
            } else {
                c.input.input(super::runbooks::to_input(key));
                c.error = None;
            }
        }
    }
    state.confirm = Some(c);
    vec![]
}

fn accept(state: &mut AppState, mut c: Confirm) -> Vec<Effect> {
    if let Some(why) = c.waiting.clone() {
        c.error = Some(format!("not yet: {why}"));
        state.confirm = Some(c);
        return vec![];
    }
    if c.effect == Effect::Quit {
        state.quit = true;
    }
    vec![c.effect]
}

/// The scrolling (or choosing) a key asks for. In a typed overlay printable keys are text, so
/// only keys that type nothing move the view.
fn navigation(state: &AppState, c: &Confirm, key: Key) -> Option<Action> {
    if c.typed() && (matches!(key.code, KeyCode::Char(_)) && !key.ctrl) {
        return None;
    }
    if c.typed() && matches!(key.code, KeyCode::Backspace | KeyCode::Delete) {
        return None;
    }
    match key.code {
        KeyCode::Up => return Some(Action::ScrollUp),
        KeyCode::Down => return Some(Action::ScrollDown),
        KeyCode::PageUp => return Some(Action::PageUp),
        KeyCode::PageDown => return Some(Action::PageDown),
        _ => {}
    }
    match state.keymap.lookup(Mode::List, key)? {
        a @ (Action::ScrollDown
        | Action::ScrollUp
        | Action::PageDown
        | Action::PageUp
        | Action::Top
        | Action::Bottom) => Some(a),
        _ => None,
    }
}

/// Rows one page key moves in the overlay (the view clamps to what exists).
pub const PAGE: usize = 10;

fn move_view(c: &mut Confirm, action: Action, max: usize) {
    if !c.choices.is_empty() && matches!(action, Action::ScrollDown | Action::ScrollUp) {
        let n = c.choices.len();
        c.choice = if action == Action::ScrollUp {
            (c.choice + n - 1) % n
        } else {
            (c.choice + 1) % n
        };
        c.effect = c.choices[c.choice].effect.clone();
        c.error = None;
        return;
    }
    c.scroll = match action {
        Action::ScrollDown => c.scroll.saturating_add(1),
        Action::ScrollUp => c.scroll.saturating_sub(1),
        Action::PageDown => c.scroll.saturating_add(PAGE),
        Action::PageUp => c.scroll.saturating_sub(PAGE),
        Action::Top => 0,
        _ => max,
    }
    .min(max);
}

/// The keys the overlay's footer shows for scrolling, from the active keymap (only keys that
/// type nothing when the overlay has a text field).
pub fn scroll_keys(state: &AppState, c: &Confirm) -> (Vec<String>, Vec<String>) {
    let pick = |a: Action| -> Vec<String> {
        state
            .keymap
            .keys_for(Mode::List, a)
            .into_iter()
            .filter(|k| !c.typed() || k.chars().count() > 1)
            .take(1)
            .collect()
    };
    let mut line = pick(Action::ScrollDown);
    line.extend(pick(Action::ScrollUp));
    let mut page = pick(Action::PageDown);
    page.extend(pick(Action::PageUp));
    (line, page)
}

/// One row of the overlay's scrollable body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRow {
    Blank,
    /// What will happen, in words.
    Text(String),
    /// A piece of the command; `continued` when it carries on the line above (wrapped).
    Command {
        text: String,
        continued: bool,
    },
    /// `NAME=value` (secrets already `***`).
    Var(String),
    Heading(String),
    Choice {
        text: String,
        selected: bool,
    },
}

/// Where the overlay's parts go on a screen, computed the same way for drawing and scrolling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// The box's width, borders included.
    pub width: u16,
    pub inner_width: usize,
    pub head_rows: u16,
    pub foot_rows: u16,
    /// Rows of the body shown at once, and the body's rows in all.
    pub body_rows: u16,
    pub body_len: usize,
    pub max_scroll: usize,
}

/// `text` cut into rows of `width` characters, every character kept (spaces too: the command
/// shown is exactly the command run).
pub fn hard_wrap(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars
        .chunks(width.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// `text` in rows of at most `width` characters, broken at a space where there is one.
pub fn soft_wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rest: Vec<char> = text.chars().collect();
    let mut rows = Vec::new();
    while rest.len() > width {
        match rest[..=width].iter().rposition(|c| *c == ' ') {
            Some(at) if at > 0 => {
                rows.push(rest[..at].iter().collect());
                rest.drain(..=at);
            }
            _ => {
                rows.push(rest[..width].iter().collect());
                rest.drain(..width);
            }
        }
    }
    rows.push(rest.into_iter().collect());
    rows
}

fn rows_of(text: &str, width: usize) -> u16 {
    u16::try_from(soft_wrap(text, width).len()).unwrap_or(u16::MAX)
}

impl Confirm {
    /// The header line: the target cluster (with `[PROD]`) and the context it will use.
    pub fn head_text(&self) -> String {
        match &self.target {
            Some(t) => format!(
                "cluster  {}{}   context {}",
                t.cluster,
                if t.protected { " [PROD]" } else { "" },
                t.context
            ),
            None => "cluster: not known yet".into(),
        }
    }

    /// The footer's text lines above the field and the key hints.
    pub fn foot_text(&self) -> Vec<String> {
        let mut foot = Vec::new();
        if let Some(why) = &self.waiting {
            foot.push(format!("waiting: {why}"));
        }
        if let Proof::Typed(word) = &self.proof {
            foot.push(format!(
                "Type {word} and press enter to go ahead (esc cancels):"
            ));
        }
        foot
    }

    /// The scrollable body at `width` columns: the words, the whole command, the variables
    /// and the choices. Nothing is cut: long lines wrap.
    pub fn body(&self, width: usize) -> Vec<BodyRow> {
        let mut rows = Vec::new();
        for l in &self.lines {
            rows.extend(soft_wrap(l, width).into_iter().map(BodyRow::Text));
        }
        if let Some(cmd) = self.command() {
            rows.push(BodyRow::Blank);
            for l in cmd.lines() {
                for (i, text) in hard_wrap(l, width.saturating_sub(2))
                    .into_iter()
                    .enumerate()
                {
                    rows.push(BodyRow::Command {
                        text,
                        continued: i > 0,
                    });
                }
            }
        }
        if !self.vars.is_empty() {
            rows.push(BodyRow::Blank);
            for (k, v) in &self.vars {
                rows.extend(
                    hard_wrap(&format!("{k}={v}"), width)
                        .into_iter()
                        .map(BodyRow::Var),
                );
            }
        }
        if !self.choices.is_empty() {
            rows.push(BodyRow::Blank);
            rows.push(BodyRow::Heading(
                "History (up/down to choose; the first line runs now):".into(),
            ));
            for (i, ch) in self.choices.iter().enumerate() {
                rows.push(BodyRow::Choice {
                    text: ch.label.clone(),
                    selected: i == self.choice,
                });
            }
        }
        rows
    }

    /// The overlay's layout over an area of `width` x `height` (the screen above the footer).
    pub fn geometry(&self, width: u16, height: u16) -> Geometry {
        let box_w = width.saturating_sub(4).min(76).min(width);
        let inner_width = usize::from(box_w.saturating_sub(2)).max(1);
        let head_rows = rows_of(&self.head_text(), inner_width);
        let foot_rows: u16 = self
            .foot_text()
            .iter()
            .map(|l| rows_of(l, inner_width))
            .sum();
        // Borders, header, footer text, the field, the error line, the key hints.
        let fixed = 2
            + head_rows
            + foot_rows
            + u16::from(self.typed())
            + u16::from(self.error.is_some())
            + 1;
        let body_len = self.body(inner_width).len();
        let body_rows = u16::try_from(body_len)
            .unwrap_or(u16::MAX)
            .min(height.saturating_sub(fixed));
        Geometry {
            width: box_w,
            inner_width,
            head_rows,
            foot_rows,
            body_rows,
            body_len,
            max_scroll: body_len.saturating_sub(usize::from(body_rows)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterConfig, Config};
    use crate::keymap::{EMBEDDED, Keymap};

    fn state() -> AppState {
        let config = Config {
            clusters: vec![ClusterConfig {
                name: "staging".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        AppState::new(
            &config,
            Keymap::parse(EMBEDDED[0].1).unwrap(),
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    #[test]
    fn an_unarmed_overlay_drops_every_key_and_a_drawn_one_emits_its_effect() {
        let mut s = state();
        open(
            &mut s,
            Confirm::new("t", Proof::Key, Effect::Copy("exactly this".into())),
        );
        for k in ["y", "esc", "enter"] {
            assert!(key(&mut s, k.parse().unwrap()).is_empty());
        }
        assert!(s.confirm.is_some(), "not even esc counts before the draw");
        crate::app::update(&mut s, crate::app::Event::Drawn);
        assert_eq!(
            key(&mut s, Key::ch('y')),
            [Effect::Copy("exactly this".into())]
        );
        assert!(s.confirm.is_none());
    }

    #[test]
    fn a_typed_proof_takes_printable_keys_as_text() {
        let mut s = state();
        let mut c = Confirm::new("t", Proof::Typed("jk".into()), Effect::Quit);
        c.armed = true;
        open(&mut s, c);
        for k in ['j', 'k'] {
            assert!(key(&mut s, Key::ch(k)).is_empty());
        }
        assert_eq!(
            s.confirm.as_ref().unwrap().scroll,
            0,
            "j/k typed, not scrolled"
        );
        assert_eq!(key(&mut s, Key::plain(KeyCode::Enter)), [Effect::Quit]);
        assert!(s.quit);
    }

    #[test]
    fn wrapping_keeps_every_character_of_a_command() {
        let cmd = "kubectl  --context \"$CONTEXT\"   scale --replicas=0 deploy/x";
        assert_eq!(hard_wrap(cmd, 7).concat(), cmd);
        assert_eq!(hard_wrap("", 7), [""]);
        assert_eq!(
            soft_wrap("scale to 0 replicas", 11),
            ["scale to 0", "replicas"]
        );
        assert_eq!(soft_wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    }
}
