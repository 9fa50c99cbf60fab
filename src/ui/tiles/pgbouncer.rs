//! The PgBouncer tile (pools with the most waiting clients first, sparklines of waiting
//! clients and maxwait) and its detail view (every pool, database and stats row).

use jiff::Timestamp;
use ratatui::text::{Line, Span};

use super::text::{fit, no_data, sparkline, stale_line, title, worst_of, wrapped};
use crate::model::pgbouncer::{
    PG_CRIT_PCT, PG_WARN_PCT, PgbouncerSnapshot, PoolRow, PostgresConnections, findings,
};
use crate::model::{Severity, Stale};
use crate::ui::Theme;

fn mode_short(m: &str) -> &str {
    match m {
        "transaction" => "txn",
        "session" => "sess",
        "statement" => "stmt",
        other => other,
    }
}

fn pool_severity(p: &PoolRow, snap: &PgbouncerSnapshot) -> Option<Severity> {
    if p.cl_waiting == 0 {
        None
    } else if p.maxwait_s >= snap.thresholds.wait_crit.as_secs_f64() {
        Some(Severity::Crit)
    } else {
        Some(Severity::Warn)
    }
}

fn pools_by_urgency(snap: &PgbouncerSnapshot) -> Vec<&PoolRow> {
    let mut pools: Vec<&PoolRow> = snap.pools.iter().collect();
    pools.sort_by(|a, b| {
        b.cl_waiting
            .cmp(&a.cl_waiting)
            .then(b.cl_active.cmp(&a.cl_active))
            .then(a.database.cmp(&b.database))
    });
    pools
}

fn postgres_severity(pg: &PostgresConnections) -> Option<Severity> {
    let pct = pg.used_pct();
    if pg.error.is_some() {
        Some(Severity::Warn)
    } else if pg.max_connections == 0 || pct <= PG_WARN_PCT {
        None
    } else if pct >= PG_CRIT_PCT {
        Some(Severity::Crit)
    } else {
        Some(Severity::Warn)
    }
}

/// `postgres 86/100 conns (86%)` then the top clients, at most `rows` lines.
fn postgres_lines(
    pg: &PostgresConnections,
    width: usize,
    rows: usize,
    theme: Theme,
) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    if rows == 0 {
        return out;
    }
    let sev = postgres_severity(pg);
    let head = match &pg.error {
        Some(e) => format!("postgres: {e}"),
        None => format!(
            "postgres {}/{} conns ({}%)",
            pg.total,
            pg.max_connections,
            pg.used_pct()
        ),
    };
    out.push(Line::styled(fit(&head, width), theme.severity(sev)));
    for c in pg.clients.iter().take(rows - 1) {
        let app = if c.application_name.is_empty() {
            "(no name)"
        } else {
            &c.application_name
        };
        out.push(Line::styled(
            fit(&format!("  {:>4} {app} {}", c.count, c.client_addr), width),
            theme.dim(),
        ));
    }
    out
}

/// The tile when the console refused the login: why, the fix, and what Postgres shows.
fn refused_tile(
    snap: &PgbouncerSnapshot,
    stale: Option<&Stale>,
    width: usize,
    height: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let raw = findings(snap, now);
    let worst = worst_of(&raw, stale);
    let mut out = vec![title("PgBouncer  console refused", worst, width, theme)];
    if let Some(s) = stale {
        out.push(stale_line(s, now, width, theme));
    }
    if let Some(r) = &snap.refused {
        let warn = theme.severity(Some(Severity::Warn));
        out.push(Line::styled(
            fit(&format!("{:?} not in admin/stats_users", r.user), width),
            warn,
        ));
        out.push(Line::styled(
            fit(
                &format!("fix: STATS_USERS={:?} in the Deployment", r.user),
                width,
            ),
            warn,
        ));
    }
    match &snap.postgres {
        Some(pg) => {
            let rows = height.saturating_sub(out.len());
            out.extend(postgres_lines(pg, width, rows, theme));
        }
        None => out.push(Line::styled(
            fit("add [cluster.pgbouncer.postgres] for conns", width),
            theme.dim(),
        )),
    }
    out.truncate(height);
    out
}

/// The compact tile for a cluster column.
pub fn tile(
    snap: Option<&PgbouncerSnapshot>,
    stale: Option<&Stale>,
    width: usize,
    height: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let Some(snap) = snap else {
        return no_data("PgBouncer", stale, width, height, now, theme);
    };
    if snap.refused.is_some() {
        return refused_tile(snap, stale, width, height, now, theme);
    }
    // Postgres's own count, when configured, takes the last line (or two, in trouble).
    let pg_rows = match &snap.postgres {
        Some(pg) if postgres_severity(pg).is_some() && height >= 6 => 2,
        Some(_) if height >= 5 => 1,
        _ => 0,
    };
    let height_all = height;
    let height = height - pg_rows;
    let mut out = Vec::new();
    let raw = findings(snap, now);
    let worst = worst_of(&raw, stale);
    let version = snap.version.trim_start_matches("PgBouncer ");
    out.push(title(&format!("PgBouncer {version}"), worst, width, theme));
    if let Some(s) = stale {
        out.push(stale_line(s, now, width, theme));
    }
    // The sparkline line and at least one pool must fit; pools take what is left.
    let spark_rows = usize::from(height >= 4);
    let room = height.saturating_sub(out.len() + spark_rows);
    let pools = pools_by_urgency(snap);
    if pools.is_empty() {
        out.push(Line::styled(" no pools (no clients yet)", theme.dim()));
    }
    let two_lines = room >= 2 * pools.len().min(2);
    let mut shown = 0;
    for p in &pools {
        let needed = if two_lines { 2 } else { 1 };
        if out.len() + needed + spark_rows > height || (shown > 0 && shown + 1 > room) {
            break;
        }
        let sev = pool_severity(p, snap);
        let right = format!(
            " cl {} wait {} {:.1}s",
            p.cl_active, p.cl_waiting, p.maxwait_s
        );
        let name = fit(
            &format!("{}/{}", p.database, p.user),
            width.saturating_sub(right.chars().count()).max(4),
        );
        let pad = width.saturating_sub(name.chars().count() + right.chars().count());
        out.push(Line::from(vec![
            Span::raw(name),
            Span::raw(" ".repeat(pad)),
            Span::styled(right, theme.severity(sev)),
        ]));
        if two_lines {
            out.push(Line::styled(
                fit(
                    &format!(
                        "  sv act {} idle {} used {}  {}",
                        p.sv_active,
                        p.sv_idle,
                        p.sv_used,
                        mode_short(&p.pool_mode)
                    ),
                    width,
                ),
                theme.dim(),
            ));
        }
        shown += 1;
    }
    if shown < pools.len() && out.len() < height.saturating_sub(spark_rows) {
        out.push(Line::styled(
            format!(" +{} more pools", pools.len() - shown),
            theme.dim(),
        ));
    }
    if spark_rows == 1 && out.len() < height {
        let cells = width.saturating_sub(14) / 2;
        let waiting: Vec<f64> = snap.history.iter().map(|h| h.cl_waiting as f64).collect();
        let maxwait: Vec<f64> = snap.history.iter().map(|h| h.maxwait_s).collect();
        out.push(Line::from(vec![
            Span::styled("wait ", theme.dim()),
            Span::styled(
                sparkline(&waiting, cells),
                theme.severity(worst.filter(|_| waiting.last().is_some_and(|w| *w > 0.0))),
            ),
            Span::styled(" maxw ", theme.dim()),
            Span::raw(sparkline(&maxwait, cells)),
        ]));
    }
    out.truncate(height);
    if let Some(pg) = &snap.postgres {
        out.extend(postgres_lines(pg, width, pg_rows, theme));
    }
    out.truncate(height_all);
    out
}

/// The full-screen detail view: every pool, database and stats row, and the findings.
pub fn detail(
    snap: Option<&PgbouncerSnapshot>,
    stale: Option<&Stale>,
    width: usize,
    height: usize,
    now: Timestamp,
    theme: Theme,
) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let Some(snap) = snap else {
        return tile(None, stale, width, height, now, theme);
    };
    out.push(Line::styled(
        fit(
            &format!(
                "{}  (polled {})",
                snap.version,
                snap.taken_at.strftime("%H:%M:%S")
            ),
            width,
        ),
        theme.title(),
    ));
    if let Some(s) = stale {
        out.extend(wrapped(
            &format!(
                "stale since {}: {}",
                crate::model::format_age(crate::model::age_secs(now, s.since)),
                s.reason
            ),
            width,
            theme.stale(),
        ));
    }
    for f in findings(snap, now) {
        // The refusal's fix is a YAML snippet: shown line by line below.
        let message = f.message.split('\n').next().unwrap_or_default().to_string();
        out.extend(wrapped(
            &format!("{} {}", f.severity.label(), message),
            width,
            theme.severity(Some(f.severity)),
        ));
        if f.key == "console-refused"
            && let Some(r) = &snap.refused
        {
            for l in r.fix().lines().skip(1) {
                out.push(Line::raw(fit(&format!("    {l}"), width)));
            }
        }
    }
    if let Some(pg) = &snap.postgres {
        out.push(Line::raw(""));
        out.extend(postgres_lines(pg, width, 1 + pg.clients.len(), theme));
        if pg.error.is_none() {
            out.push(Line::styled(
                fit(
                    "  (application address: direct clients bypass PgBouncer; its own connections come from PgBouncer's address)",
                    width,
                ),
                theme.dim(),
            ));
        }
    }
    if snap.refused.is_some() {
        out.truncate(height);
        return out;
    }
    out.push(Line::raw(""));
    out.push(Line::styled(
        fit(
            &format!(
                "{:<24} {:>5} {:>5} {:>5} {:>5} {:>5} {:>7}  mode",
                "pool", "cl_a", "cl_w", "sv_a", "sv_i", "sv_u", "maxwait"
            ),
            width,
        ),
        theme.title(),
    ));
    for p in pools_by_urgency(snap) {
        let line = format!(
            "{:<24} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6.1}s  {}",
            fit(&format!("{}/{}", p.database, p.user), 24),
            p.cl_active,
            p.cl_waiting,
            p.sv_active,
            p.sv_idle,
            p.sv_used,
            p.maxwait_s,
            p.pool_mode
        );
        let style = match pool_severity(p, snap) {
            Some(sev) => theme.severity(Some(sev)),
            None => ratatui::style::Style::new(),
        };
        out.push(Line::styled(fit(&line, width), style));
    }
    out.push(Line::raw(""));
    out.push(Line::styled(
        fit(
            &format!(
                "{:<16} {:<22} {:>5} {:>6}  state",
                "database", "server", "pool", "conns"
            ),
            width,
        ),
        theme.title(),
    ));
    for d in &snap.databases {
        let state = match (d.paused, d.disabled) {
            (true, true) => "paused, disabled",
            (true, false) => "paused",
            (false, true) => "disabled",
            (false, false) => "ok",
        };
        let line = format!(
            "{:<16} {:<22} {:>5} {:>6}  {state}",
            fit(&d.name, 16),
            fit(&format!("{}:{}/{}", d.host, d.port, d.database), 22),
            d.pool_size,
            d.current_connections
        );
        let sev = (d.paused || d.disabled).then_some(Severity::Crit);
        out.push(Line::styled(
            fit(&line, width),
            if sev.is_some() {
                theme.severity(sev)
            } else {
                ratatui::style::Style::new()
            },
        ));
    }
    out.push(Line::raw(""));
    out.push(Line::styled(
        fit(
            &format!(
                "{:<16} {:>6} {:>6} {:>9} {:>9} {:>9}",
                "stats", "tps", "qps", "avg query", "avg xact", "avg wait"
            ),
            width,
        ),
        theme.title(),
    ));
    for s in &snap.stats {
        let ms = |us: u64| format!("{:.1}ms", us as f64 / 1000.0);
        let line = format!(
            "{:<16} {:>6} {:>6} {:>9} {:>9} {:>9}",
            fit(&s.database, 16),
            s.avg_xact_count,
            s.avg_query_count,
            ms(s.avg_query_time_us),
            ms(s.avg_xact_time_us),
            ms(s.avg_wait_time_us)
        );
        out.push(Line::raw(fit(&line, width)));
    }
    out.truncate(height);
    out
}
