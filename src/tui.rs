//! The terminal: raw mode and the alternate screen, restored on quit, panic, SIGTERM and SIGHUP;
//! and the event loop that feeds the reducer and redraws only when the screen would change.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossterm::event::{
    Event as TermEvent, EventStream, KeyCode as CtKey, KeyEventKind, KeyModifiers,
};
use crossterm::{cursor, execute, terminal};
use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use ratatui::Terminal;
use ratatui::backend::{Backend, ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::app::{AppState, Effect, Event, update};
use crate::keymap::{Key, KeyCode};
use crate::runbook::session::{RunCommand, RunEvent};
use crate::sources::SourceEvent;
use crate::ui::{self, Theme};

/// At most ~30 frames a second, however fast events arrive.
const FRAME: Duration = Duration::from_millis(33);

/// Puts the terminal back the way the shell had it. Safe to call more than once.
pub fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

/// Raw mode + alternate screen for as long as it lives; restored on drop and on panic.
pub struct TerminalGuard;

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        // The process-wide hook (main installs it) restores the terminal, after ending the
        // running steps, and ends the process.
        crate::crash::install_hook();
        terminal::enable_raw_mode()?;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(TerminalGuard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Collects one frame's output and writes it to stdout as one synchronized update, or writes
/// nothing at all when the frame changed nothing.
pub struct FrameWriter {
    buf: Vec<u8>,
    written: Arc<AtomicU64>,
}

impl Write for FrameWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[?2026h")?;
        out.write_all(&self.buf)?;
        out.write_all(b"\x1b[?2026l")?;
        out.flush()?;
        self.written
            .fetch_add(self.buf.len() as u64 + 16, Ordering::Relaxed);
        self.buf.clear();
        Ok(())
    }
}

/// A crossterm backend that does not re-send "hide cursor" on every frame, so an unchanged
/// frame costs zero bytes.
pub struct QuietBackend {
    inner: CrosstermBackend<FrameWriter>,
    cursor_hidden: bool,
}

impl Backend for QuietBackend {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        // ratatui's crossterm backend ends every draw with four colour/attribute resets, even
        // when no cell changed: 19 bytes (35 with the synchronized-output wrapper) per
        // unchanged frame, i.e. 35 B/s from the once-a-second tick (BENCHMARKS.md).
        let mut content = content.peekable();
        if content.peek().is_none() {
            return Ok(());
        }
        self.inner.draw(content)
    }
    fn hide_cursor(&mut self) -> io::Result<()> {
        if self.cursor_hidden {
            return Ok(());
        }
        self.cursor_hidden = true;
        self.inner.hide_cursor()
    }
    fn show_cursor(&mut self) -> io::Result<()> {
        self.cursor_hidden = false;
        self.inner.show_cursor()
    }
    fn get_cursor_position(&mut self) -> io::Result<Position> {
        // A full-screen console never needs to ask the terminal where the cursor is, and a
        // terminal that does not answer the query (some multiplexers, test PTYs) would stall.
        Ok(Position::ORIGIN)
    }
    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        self.inner.set_cursor_position(position)
    }
    fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }
    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.inner.clear_region(clear_type)
    }
    fn size(&self) -> io::Result<Size> {
        self.inner.size()
    }
    fn window_size(&mut self) -> io::Result<WindowSize> {
        self.inner.window_size()
    }
    fn flush(&mut self) -> io::Result<()> {
        Backend::flush(&mut self.inner)
    }
}

fn translate(ev: crossterm::event::KeyEvent) -> Option<Key> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let code = match ev.code {
        CtKey::Char(c) => KeyCode::Char(c),
        CtKey::Enter => KeyCode::Enter,
        CtKey::Esc => KeyCode::Esc,
        CtKey::Tab => KeyCode::Tab,
        CtKey::BackTab => KeyCode::BackTab,
        CtKey::Backspace => KeyCode::Backspace,
        CtKey::Up => KeyCode::Up,
        CtKey::Down => KeyCode::Down,
        CtKey::Left => KeyCode::Left,
        CtKey::Right => KeyCode::Right,
        CtKey::PageUp => KeyCode::PageUp,
        CtKey::PageDown => KeyCode::PageDown,
        CtKey::Home => KeyCode::Home,
        CtKey::End => KeyCode::End,
        CtKey::Delete => KeyCode::Delete,
        CtKey::F(n) => KeyCode::F(n),
        _ => return None,
    };
    let m = ev.modifiers;
    let is_char = matches!(code, KeyCode::Char(_));
    Some(Key {
        code,
        ctrl: m.contains(KeyModifiers::CONTROL),
        alt: m.contains(KeyModifiers::ALT),
        shift: !is_char && code != KeyCode::BackTab && m.contains(KeyModifiers::SHIFT),
    })
}

/// Runs an exec quick action on the real terminal and records it (start record before the
/// shell opens; refused if it cannot be written); returns the notice.
async fn run_exec(
    config: &crate::config::Config,
    action: &crate::drill::actions::QuickAction,
    confirmation: crate::runbook::run::Confirmation,
) -> String {
    use crate::drill::actions::{QuickActionKind, exec_and_record};
    let QuickActionKind::Exec { ns, pod, container } = &action.kind else {
        return String::new();
    };
    let Some(cluster) = config.clusters.iter().find(|c| c.name == action.cluster) else {
        return format!("no cluster {}", action.cluster);
    };
    let audit = crate::runbook::audit::AuditLog::new(config.audit_log.clone());
    let actor = crate::runbook::audit::Actor::current();
    let result = match crate::sources::kube::client_for(cluster).await {
        Ok(client) => exec_and_record(client, action, &audit, &actor, confirmation.as_str()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(t) => format!("exec {ns}/{pod} ({container}): {t}"),
        Err(e) => format!("exec {ns}/{pod}: {e}"),
    }
}

/// Puts `text` on the terminal's clipboard with OSC 52, which terminals honour over SSH.
fn copy_osc52(text: &str) {
    let mut out = io::stdout().lock();
    let _ = write!(out, "\x1b]52;c;{}\x07", base64(text.as_bytes()));
    let _ = out.flush();
}

/// Standard base64 with padding (all OSC 52 needs; not worth a dependency).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The channels between the console and its background workers.
pub struct Workers {
    pub config: crate::config::Config,
    pub sources: UnboundedReceiver<SourceEvent>,
    pub forwards: crate::forward::Forwards,
    pub run_commands: tokio::sync::mpsc::UnboundedSender<crate::runbook::session::RunCommand>,
    pub run_events: UnboundedReceiver<crate::runbook::session::RunEvent>,
    /// The runbook executor: awaited at exit so a running step is cancelled and recorded.
    pub executor: tokio::task::JoinHandle<()>,
}

/// Runs the console until the engineer quits or a signal arrives. Sources keep sending
/// snapshots; this loop never waits on anything but events.
pub async fn run(mut state: AppState, workers: Workers, theme: Theme) -> anyhow::Result<()> {
    let Workers {
        config,
        mut sources,
        forwards,
        run_commands,
        mut run_events,
        executor,
    } = workers;
    // Why the console is closing, for the end record of a step it cancels.
    let mut quit_reason = "the console quit";
    // Running log streams, by generation, so leaving a log view stops its stream.
    let mut log_streams: std::collections::HashMap<u64, tokio_util::sync::CancellationToken> =
        Default::default();
    // Results of background effects (a forward started, ...) come back on this channel.
    let (bg_tx, mut bg_rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    {
        let mut snapshots = forwards.subscribe();
        let tx = bg_tx.clone();
        tokio::spawn(async move {
            loop {
                let snap = snapshots.borrow_and_update().clone();
                if tx.send(Event::Forwards(snap)).is_err() || snapshots.changed().await.is_err() {
                    return;
                }
            }
        });
        let f = forwards.clone();
        let tx = bg_tx.clone();
        tokio::spawn(async move {
            for (id, result) in f.start_autostart().await {
                if let Err(e) = result {
                    let _ = tx.send(Event::Notice(format!("{id}: {e}")));
                }
            }
        });
    }
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // Ctrl-C is a key in raw mode; while an interactive step owns the terminal it must reach
    // that step, not end the console.
    let mut sigint = signal(SignalKind::interrupt())?;
    let _guard = TerminalGuard::enter()?;
    let written = Arc::new(AtomicU64::new(0));
    let backend = QuietBackend {
        inner: CrosstermBackend::new(FrameWriter {
            buf: Vec::new(),
            written: written.clone(),
        }),
        cursor_hidden: true,
    };
    let mut term = Terminal::new(backend)?;
    term.clear()?;
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    // Effects of keys handled just before a draw, carried out before that draw.
    let mut pending_effects: Vec<Effect> = Vec::new();
    'console: loop {
        if dirty && last_draw.elapsed() >= FRAME {
            // Keys already typed are handled before the frame that follows them is drawn: a
            // key typed before a confirmation was on screen must not count as confirming it.
            let mut early = Vec::new();
            while let Some(Some(ev)) = input.next().now_or_never() {
                match ev {
                    Ok(TermEvent::Key(k)) => {
                        if let Some(key) = translate(k) {
                            early.extend(update(&mut state, Event::Key(key)));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "terminal input failed");
                        early.extend(update(&mut state, Event::Terminate));
                    }
                }
            }
            if !early.is_empty() || state.quit {
                // Carry them out like any other event's effects (below), then draw.
                pending_effects = early;
                dirty = true;
            } else {
                term.draw(|f| {
                    ui::render(f, &state, theme);
                })?;
                // The frame is on screen: an open confirmation may now be answered.
                update(&mut state, Event::Drawn);
                // Learn the page size for page up/down from what was drawn.
                if let Ok(size) = term.size() {
                    state.page = size.height.saturating_sub(4) as usize;
                    state.screen = (size.width, size.height);
                }
                dirty = false;
                last_draw = Instant::now();
            }
        }
        let redraw_at = last_draw + FRAME;
        let event = if !pending_effects.is_empty() || state.quit {
            None
        } else {
            Some(tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(TermEvent::Key(k))) => match translate(k) {
                    Some(key) => Event::Key(key),
                    None => continue,
                },
                Some(Ok(TermEvent::Resize(..))) => { dirty = true; continue; }
                Some(Ok(_)) => continue,
                Some(Err(e)) => { tracing::warn!(error = %e, "terminal input failed"); Event::Terminate }
                None => Event::Terminate,
            },
            Some(ev) = sources.recv() => Event::Source(ev),
            Some(ev) = run_events.recv() => Event::Run(ev),
            Some(ev) = bg_rx.recv() => ev,
            _ = tick.tick() => Event::Tick(Timestamp::now()),
            _ = sigterm.recv() => { quit_reason = "SIGTERM"; Event::Terminate }
            _ = sighup.recv() => { quit_reason = "SIGHUP"; Event::Terminate }
            _ = sigint.recv() => continue,
            _ = tokio::time::sleep_until(redraw_at), if dirty => continue,
            })
        };
        let mut effects = std::mem::take(&mut pending_effects);
        if let Some(event) = event {
            effects.extend(update(&mut state, event));
        }
        // Drain everything already waiting so a burst becomes one frame.
        while let Ok(ev) = sources.try_recv() {
            effects.extend(update(&mut state, Event::Source(ev)));
        }
        while let Ok(ev) = run_events.try_recv() {
            effects.extend(update(&mut state, Event::Run(ev)));
        }
        if effects.contains(&Effect::Quit) || state.quit {
            break;
        }
        for effect in effects {
            let cmd = match effect {
                Effect::Runbook(cmd) => cmd,
                Effect::ToggleForward(id) => {
                    let (f, tx) = (forwards.clone(), bg_tx.clone());
                    tokio::spawn(async move {
                        let by = crate::drill::actions::CONFIRMED_BY_KEY;
                        let text = match f.toggle_confirmed(&id, by).await {
                            Ok(Some(addr)) => format!("{id}: listening on {addr}"),
                            Ok(None) => format!("{id}: stopped"),
                            Err(e) => format!("{id}: {e}"),
                        };
                        let _ = tx.send(Event::Notice(text));
                    });
                    continue;
                }
                Effect::Copy(text) => {
                    copy_osc52(&text);
                    continue;
                }
                Effect::Argocd {
                    cluster,
                    app,
                    action,
                    confirmation,
                } => {
                    let Some(cfg) = config.clusters.get(cluster).cloned() else {
                        continue;
                    };
                    let (tx, audit) = (
                        bg_tx.clone(),
                        crate::runbook::audit::AuditLog::new(config.audit_log.clone()),
                    );
                    tokio::spawn(async move {
                        let text = crate::effects::argocd_action(
                            &cfg,
                            &app,
                            action,
                            confirmation.as_str(),
                            &audit,
                        )
                        .await;
                        let _ = tx.send(Event::ArgoResult { cluster, app, text });
                    });
                    continue;
                }
                Effect::Quit => continue,
                Effect::Quick {
                    action,
                    confirmation,
                } if matches!(
                    action.kind,
                    crate::drill::actions::QuickActionKind::Exec { .. }
                ) =>
                {
                    // A shell gets the real terminal: stop reading keys, leave the alternate
                    // screen (raw mode stays for the remote TTY), run it, take the terminal back.
                    drop(input);
                    let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
                    let text = run_exec(&config, &action, confirmation).await;
                    terminal::enable_raw_mode()?;
                    execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
                    term.clear()?;
                    input = EventStream::new();
                    update(&mut state, Event::Notice(text));
                    continue;
                }
                other => {
                    crate::effects::spawn(other, &config, &bg_tx, &mut log_streams);
                    continue;
                }
            };
            let interactive = matches!(&cmd, RunCommand::Step { runbook, index, .. }
                if runbook.steps.get(*index).is_some_and(|s| s.attrs.interactive));
            if !interactive {
                let _ = run_commands.send(cmd);
                continue;
            }
            // Hand the terminal to the step: leave the alternate screen and raw mode, stop
            // reading keys, wait for the step to end, then take the terminal back.
            drop(input);
            restore();
            let _ = run_commands.send(cmd);
            // A signal meanwhile (the SSH session dropped) cancels the step, which is then
            // recorded as usual; the console closes after it.
            loop {
                let ev = tokio::select! {
                    ev = run_events.recv() => ev,
                    _ = sigterm.recv() => {
                        quit_reason = "SIGTERM";
                        state.quit = true;
                        let _ = run_commands.send(RunCommand::Shutdown(quit_reason.into()));
                        continue;
                    }
                    _ = sighup.recv() => {
                        quit_reason = "SIGHUP";
                        state.quit = true;
                        let _ = run_commands.send(RunCommand::Shutdown(quit_reason.into()));
                        continue;
                    }
                };
                let Some(ev) = ev else { break };
                let finished =
                    matches!(ev, RunEvent::StepFinished { .. } | RunEvent::Refused { .. });
                update(&mut state, Event::Run(ev));
                if finished {
                    break;
                }
            }
            if state.quit {
                break 'console;
            }
            terminal::enable_raw_mode()?;
            execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
            term.clear()?;
            input = EventStream::new();
        }
        dirty = true;
    }
    // A running step is cancelled (its whole process group) and its end record written before
    // the console goes; the executor returns once that is done and the lock is released.
    let _ = run_commands.send(RunCommand::Shutdown(quit_reason.to_string()));
    if tokio::time::timeout(Duration::from_secs(15), executor)
        .await
        .is_err()
    {
        tracing::error!("the runbook executor did not stop within 15s");
    }
    // Forwards stop cleanly (and are recorded); a stalled cluster must not hold the exit.
    let _ = tokio::time::timeout(Duration::from_secs(3), forwards.shutdown()).await;
    tracing::info!(
        bytes = written.load(Ordering::Relaxed),
        "terminal output at exit"
    );
    drop(term);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(
            super::base64(b"http://127.0.0.1:3000"),
            "aHR0cDovLzEyNy4wLjAuMTozMDAw"
        );
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b"a"), "YQ==");
        assert_eq!(super::base64(b""), "");
    }
}
