//! Plausible container logs for simulated pods: JSON access/worker lines for the Go
//! services, tool-specific lines for infrastructure, and for a crash-looping container
//! the connection-refused error and panic it dies with.

use serde_json::Value;

use super::seed::hash64;

const PATHS: &[&str] = &[
    "/api/v1/accounts",
    "/api/v1/invoices",
    "/api/v1/users/me",
    "/healthz",
    "/api/v1/journal-entries",
    "/api/v1/roles",
];

/// Whether the container is crash-looping (its logs end in a crash).
pub fn is_crashlooping(pod: &Value) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
                    || c["lastState"]["terminated"]["reason"] == "Error"
            })
        })
}

fn ts(offset_s: i64) -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second() - offset_s)
        .unwrap_or(now)
        .to_string()
}

/// One ordinary log line number `seq` of `container`, written `offset_s` seconds ago.
pub fn line(container: &str, seq: u64, offset_s: i64) -> String {
    let h = hash64(&format!("{container}{seq}"));
    let t = ts(offset_s);
    match container {
        "postgres" => format!(
            "{t} [{}] LOG:  checkpoint complete: wrote {} buffers ({:.1}%); 0 WAL file(s) added, 0 removed, 1 recycled",
            60 + h % 40,
            h % 400,
            (h % 100) as f64 / 10.0
        ),
        "pgbouncer" => format!(
            "{t} [1] LOG stats: {} xacts/s, {} queries/s, in {} B/s, out {} B/s, xact {} us, query {} us, wait {} us",
            h % 40,
            h % 120,
            h % 9000,
            h % 40000,
            h % 3000,
            h % 900,
            h % 50
        ),
        "redis" => format!(
            "1:M {t} * {} changes in 60 seconds. Saving... (no persistence configured)",
            h % 50
        ),
        _ => format!(
            r#"{{"level":"info","ts":"{t}","service":"{container}","msg":"request handled","method":"{}","path":"{}","status":{},"duration_ms":{},"trace_id":"{:016x}"}}"#,
            if h.is_multiple_of(3) { "POST" } else { "GET" },
            PATHS[(h % PATHS.len() as u64) as usize],
            if h.is_multiple_of(17) { 404 } else { 200 },
            h % 250,
            h
        ),
    }
}

/// The last lines a crash-looping container writes before it exits.
pub fn crash_lines(container: &str) -> Vec<String> {
    let t = ts(2);
    vec![
        format!(r#"{{"level":"info","ts":"{t}","service":"{container}","msg":"starting","version":"v1.9.0"}}"#),
        format!(r#"{{"level":"info","ts":"{t}","service":"{container}","msg":"connecting to database","host":"pgbouncer.database.svc.cluster.local","port":5432}}"#),
        format!(r#"{{"level":"error","ts":"{t}","service":"{container}","msg":"database ping failed","error":"dial tcp 10.43.0.14:5432: connect: connection refused","attempt":3}}"#),
        "panic: failed to connect to postgres: dial tcp 10.43.0.14:5432: connect: connection refused".to_string(),
        String::new(),
        "goroutine 1 [running]:".to_string(),
        format!("main.main()\n\t/src/cmd/{container}/main.go:57 +0x2a5"),
    ]
}

/// The log a `GET .../log` returns (without follow): the last `tail` lines.
pub fn snapshot(pod: &Value, container: &str, previous: bool, tail: Option<usize>) -> Vec<String> {
    let crash = is_crashlooping(pod);
    let mut lines: Vec<String> = if crash {
        // Both the previous and the current instance die the same way.
        let _ = previous;
        crash_lines(container)
    } else {
        (0..40u64)
            .map(|i| line(container, i, 400 - i as i64 * 10))
            .collect()
    };
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crashlooping_container_logs_connection_refused_panic() {
        let pod = json!({"status": {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let lines = snapshot(&pod, "iam-service", false, None);
        assert!(lines.iter().any(|l| l.contains("connection refused")));
        assert!(lines.iter().any(|l| l.starts_with("panic:")));
        assert_eq!(snapshot(&json!({}), "x", false, Some(5)).len(), 5);
    }
}
