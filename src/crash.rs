//! What a panic does, anywhere in the process (a spawned task included): the running steps'
//! process groups are ended and their end records written, the terminal is put back, the panic is
//! reported, and the process exits with 101 — never a console left running without the task that
//! panicked, or a shell left in raw mode.

use std::sync::Once;
use std::time::Duration;

/// The exit code after a panic (Rust's own for a panicking main).
pub const PANIC_EXIT: i32 = 101;
/// A hook stuck on a lock the panicking thread held must not keep the process alive.
const HOOK_DEADLINE: Duration = Duration::from_secs(5);

static INSTALLED: Once = Once::new();

/// Installs the process-wide panic hook; later calls do nothing. `main` calls it first thing,
/// for every command.
pub fn install_hook() {
    INSTALLED.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            end_everything();
            report(info);
            std::process::exit(PANIC_EXIT);
        }));
    });
}

/// Ends every running step (its group gets SIGTERM, then SIGKILL from its supervisor after the
/// grace period), writes their end records (`cancelled`, reason `panic`), and restores the
/// terminal if the console had it. The panic hook's work before it reports and exits.
pub fn end_everything() {
    std::thread::spawn(|| {
        std::thread::sleep(HOOK_DEADLINE);
        // SAFETY: ends the process without running anything more.
        unsafe { libc::_exit(PANIC_EXIT) };
    });
    crate::runbook::exec::abort_now("panic");
    if crossterm::terminal::is_raw_mode_enabled().unwrap_or(false) {
        crate::tui::restore();
    }
}
