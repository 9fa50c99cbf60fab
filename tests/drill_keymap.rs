//! `keymaps/vim.toml` parses, names only known actions, and keeps the essentials reachable.

use opsdeck::app::action::Action;
use opsdeck::keymap::{Key, KeyCode, Keymap, Mode};

fn vim() -> Keymap {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keymaps/vim.toml");
    Keymap::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn vim_keymap_moves_with_hjkl_and_can_always_quit_and_get_help() {
    let km = vim();
    for mode in [Mode::Overview, Mode::List, Mode::Runbook, Mode::Help] {
        assert_eq!(
            km.lookup(mode, Key::ctrl('c')),
            Some(Action::Quit),
            "{mode:?}"
        );
        assert_eq!(
            km.lookup(mode, Key::ch('?')),
            Some(Action::Help),
            "{mode:?}"
        );
        assert_eq!(
            km.lookup(mode, Key::plain(KeyCode::Esc)),
            Some(Action::Back),
            "{mode:?}"
        );
    }
    assert_eq!(
        km.lookup(Mode::List, Key::ch('j')),
        Some(Action::ScrollDown)
    );
    assert_eq!(km.lookup(Mode::List, Key::ch('k')), Some(Action::ScrollUp));
    assert_eq!(km.lookup(Mode::List, Key::ch('l')), Some(Action::Open));
    assert_eq!(km.lookup(Mode::List, Key::ch('h')), Some(Action::Back));
    assert_eq!(
        km.lookup(Mode::List, Key::ctrl('f')),
        Some(Action::PageDown)
    );
    assert_eq!(km.lookup(Mode::List, Key::ch('G')), Some(Action::Bottom));
    assert_eq!(km.lookup(Mode::Overview, Key::ch('q')), Some(Action::Quit));
    for action in [
        Action::Findings,
        Action::FocusNextCluster,
        Action::Open,
        Action::Runbooks,
    ] {
        assert!(!km.keys_for(Mode::Overview, action).is_empty(), "{action}");
    }
}
