//! Every shipped keymap parses and names only known actions; the essentials are bound.

use opsdeck::app::action::Action;
use opsdeck::keymap::{EMBEDDED, Key, Keymap, Mode};

#[test]
fn every_keymap_file_parses_and_names_only_known_actions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keymaps");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        Keymap::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert!(
            EMBEDDED.iter().any(|(n, _)| *n == stem),
            "{stem}.toml is not embedded in the binary"
        );
        seen += 1;
    }
    assert!(seen >= 1);
}

#[test]
fn default_keymap_reaches_every_view_and_can_always_quit() {
    let km = Keymap::parse(EMBEDDED[0].1).unwrap();
    for mode in [Mode::Overview, Mode::List, Mode::Help] {
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
    }
    for action in [
        Action::Findings,
        Action::FocusNextCluster,
        Action::Open,
        Action::Back,
        Action::Quit,
    ] {
        assert!(
            !km.keys_for(Mode::Overview, action).is_empty(),
            "{action} is not bound in the overview"
        );
    }
}

#[test]
fn vim_sequences_wait_for_the_second_key_and_show_what_may_follow() {
    use opsdeck::app::{AppState, Event, update};
    use opsdeck::config::{ClusterConfig, Config};
    let (km, warnings) = Keymap::load("vim", None);
    assert!(warnings.is_empty(), "{warnings:?}");
    let config = Config {
        clusters: vec![ClusterConfig {
            name: "staging".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut s = AppState::new(&config, km, jiff::Timestamp::now());
    update(&mut s, Event::Key("F".parse().unwrap()));
    for _ in 0..3 {
        update(&mut s, Event::Key("j".parse().unwrap()));
    }
    assert_eq!(s.scroll, 3);
    update(&mut s, Event::Key("g".parse().unwrap()));
    assert_eq!(s.pending, [Key::ch('g')], "g alone waits");
    let next = s.keymap.continuations(s.mode(), &s.pending);
    assert!(
        next.iter().any(|(k, a)| k == "g" && *a == Action::Top),
        "{next:?}"
    );
    update(&mut s, Event::Key("g".parse().unwrap()));
    assert!(s.pending.is_empty());
    assert_eq!(s.scroll, 0, "g g went to the top");
    update(&mut s, Event::Key("g".parse().unwrap()));
    update(&mut s, Event::Key("esc".parse().unwrap()));
    assert!(s.pending.is_empty());
    assert_eq!(
        s.view,
        opsdeck::app::View::Findings,
        "esc only abandoned the sequence"
    );
}

#[test]
fn a_key_that_is_both_a_binding_and_a_prefix_is_an_error() {
    let e = Keymap::parse("[list]\n\"g\" = \"top\"\n\"g g\" = \"top\"\n").unwrap_err();
    assert!(
        e.contains("both a binding and the start of a sequence"),
        "{e}"
    );
}
