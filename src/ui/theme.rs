//! Colours and text styles. With `NO_COLOR` set, meaning survives through text markers
//! (`[PROD]`, `CRIT`) and bold/reverse instead of colour.

use ratatui::style::{Color, Modifier, Style};

use crate::model::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to anything non-empty (https://no-color.org).
    pub fn from_env() -> Theme {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn severity(self, s: Option<Severity>) -> Style {
        match s {
            Some(Severity::Crit) => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Some(Severity::Warn) => self.fg(Color::Yellow),
            None => self.fg(Color::Green),
        }
    }

    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    pub fn title(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// A cluster header: protected clusters can't be mistaken for others, with or without colour.
    pub fn header(self, protected: bool, focused: bool) -> Style {
        let base = match (protected, self.color) {
            (true, true) => Style::new()
                .bg(Color::Red)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            (false, true) => Style::new()
                .bg(Color::Blue)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            (true, false) => Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            (false, false) => Style::new().add_modifier(Modifier::BOLD),
        };
        if focused {
            base.add_modifier(Modifier::UNDERLINED)
        } else {
            base
        }
    }

    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn stale(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
}
