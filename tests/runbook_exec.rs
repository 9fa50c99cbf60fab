//! The runbook engine on real processes: variables arrive as one literal argument, exit codes
//! and `$OPSDECK_ENV` hand-off, timeout and cancel kill the whole process group, output stays
//! bounded, and every step leaves its audit records.

use std::sync::Arc;
use std::time::Duration;

use opsdeck::runbook::audit::AuditLog;
use opsdeck::runbook::driver::{Answer, Driver, Needs};
use opsdeck::runbook::exec::{self, Ending, StepSpec, TAIL_LINES};
use opsdeck::runbook::parse;
use opsdeck::runbook::run::{Confirmation, Run, StepState};
use opsdeck::runbook::vars::{RunVars, Target};
use tokio_util::sync::CancellationToken;

fn spec(command: &str) -> StepSpec {
    StepSpec {
        command: command.into(),
        env: vec![],
        cwd: None,
        timeout: None,
        interactive: false,
        grace: Duration::from_millis(500),
    }
}

fn target(read_only: bool) -> Target {
    Target {
        name: "staging".into(),
        context: "staging".into(),
        kubeconfig: "/nonexistent/kubeconfig".into(),
        app_namespace: "goapps-staging".into(),
        protected: false,
        read_only,
        host: None,
        env: [(
            "BACKUP_DIR".to_string(),
            "/mnt/stgapps-backup/postgres".to_string(),
        )]
        .into(),
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only probes for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn a_hostile_value_reaches_the_command_as_one_literal_argument() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("args");
    let hostile = "x; rm -rf / $(touch /tmp/pwned) `id` \"q\" 'q'\nsecond line";
    let mut s = spec(&format!(
        "printf '%s\\0' \"$EVIL\" > '{}'; echo \"$#\"",
        out.display()
    ));
    s.env.push(("EVIL".into(), hostile.into()));
    let o = exec::run(&s, |_| {}, &CancellationToken::new())
        .await
        .unwrap();
    assert!(o.ok());
    let got = std::fs::read(&out).unwrap();
    assert_eq!(
        got,
        [hostile.as_bytes(), b"\0"].concat(),
        "received exactly one argument, unchanged"
    );
}

#[tokio::test]
async fn exit_codes_and_errexit_pipefail_nounset() {
    let run = |c: &str| {
        let c = c.to_string();
        async move {
            exec::run(&spec(&c), |_| {}, &CancellationToken::new())
                .await
                .unwrap()
                .ending
        }
    };
    assert_eq!(run("exit 3").await, Ending::Exited(3));
    assert_eq!(run("false; echo never").await, Ending::Exited(1), "errexit");
    assert_eq!(run("false | true").await, Ending::Exited(1), "pipefail");
    assert_eq!(
        run("echo \"$UNSET_THING\"").await,
        Ending::Exited(1),
        "nounset"
    );
    assert_eq!(run("true").await, Ending::Exited(0));
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group_leaving_no_survivor() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let mut s = spec(&format!(
        "sleep 300 & echo $! > '{}'; sleep 300",
        pidfile.display()
    ));
    s.timeout = Some(Duration::from_millis(800));
    let o = exec::run(&s, |_| {}, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(o.ending, Ending::TimedOut);
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for _ in 0..50 {
        if !alive(child) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("background child {child} survived the timeout");
}

#[tokio::test]
async fn cancel_stops_a_step_that_ignores_sigterm() {
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let s = spec("trap '' TERM; echo started; while true; do sleep 0.1; done");
    let mut lines = Vec::new();
    let o = exec::run(&s, |l| lines.push(l.to_string()), &cancel)
        .await
        .unwrap();
    assert_eq!(o.ending, Ending::Cancelled);
    assert_eq!(lines, ["started"]);
}

#[tokio::test]
async fn output_of_megabytes_stays_bounded() {
    let o = exec::run(
        &spec("for i in $(seq 1 200000); do echo \"line $i of a step that talks a lot\"; done"),
        |_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(o.ok());
    assert!(o.output_bytes > 5_000_000);
    assert_eq!(o.tail.len(), TAIL_LINES);
    assert_eq!(
        o.tail.back().unwrap(),
        "line 200000 of a step that talks a lot"
    );
}

const RB: &str = r#"---
title: Test
vars:
  TOKEN:
    secret: true
---
## Remember something
```sh {name=remember}
echo "REPLICAS=3" >> "$OPSDECK_ENV"
echo "token is $TOKEN"
```
## Use it
```sh {name=use}
echo "replicas $REPLICAS on $CLUSTER ctx $CONTEXT dir $BACKUP_DIR"
```
## Break
```sh {name=break destructive=true}
exit 7
```
"#;

#[tokio::test]
async fn steps_hand_values_on_and_leave_audit_records_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let rb = Arc::new(parse::parse("test", RB).unwrap());
    let mut vars = RunVars::for_target(&target(false));
    vars.set("TOKEN", "s3cr3t-value".into(), true).unwrap();
    let mut run = Run::new(rb.clone(), target(false), vars, audit.clone()).unwrap();
    let cancel = CancellationToken::new();
    let mut seen = Vec::new();
    let o = run
        .run_step(
            0,
            &rb.steps[0].command,
            Confirmation::Key,
            |l| seen.push(l.to_string()),
            &cancel,
            || None,
        )
        .await
        .unwrap();
    assert!(o.ok());
    let o = run
        .run_step(
            1,
            &rb.steps[1].command,
            Confirmation::Key,
            |l| seen.push(l.to_string()),
            &cancel,
            || None,
        )
        .await
        .unwrap();
    assert!(o.ok());
    assert!(
        seen.contains(
            &"replicas 3 on staging ctx staging dir /mnt/stgapps-backup/postgres".to_string()
        ),
        "{seen:?}"
    );
    let o = run
        .run_step(2, "exit 7", Confirmation::Typed, |_| {}, &cancel, || None)
        .await
        .unwrap();
    assert_eq!(o.exit_code(), Some(7));
    assert_eq!(run.states[2], StepState::Failed("exit 7".into()));
    run.skip(2, "known broken").unwrap();

    let text = std::fs::read_to_string(audit.path()).unwrap();
    assert!(
        !text.contains("s3cr3t-value"),
        "the secret never reaches the audit file"
    );
    let recs = audit.read_all().unwrap();
    let events: Vec<_> = recs
        .iter()
        .map(|r| (r.event.as_str(), r.step.as_deref().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("step_started", "remember"),
            ("step_finished", "remember"),
            ("step_started", "use"),
            ("step_finished", "use"),
            ("step_started", "break"),
            ("step_finished", "break"),
            ("step_skipped", "break"),
        ]
    );
    assert_eq!(recs[1].exit_code, Some(0));
    assert!(
        recs[1]
            .output_tail
            .as_deref()
            .unwrap()
            .contains("token is ***")
    );
    assert_eq!(recs[5].exit_code, Some(7));
    assert_eq!(recs[4].confirmation.as_deref(), Some("typed"));
    assert!(
        recs.iter()
            .all(|r| r.run_id.as_deref() == Some(run.id.as_str()) && r.cluster == "staging")
    );
    assert_eq!(recs[0].vars["TOKEN"], "***");
    assert_eq!(recs[6].reason.as_deref(), Some("known broken"));
}

#[tokio::test]
async fn an_edited_command_is_what_runs_and_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let rb = Arc::new(parse::parse("test", RB).unwrap());
    let mut run = Run::new(
        rb,
        target(false),
        RunVars::for_target(&target(false)),
        audit.clone(),
    )
    .unwrap();
    let mut seen = Vec::new();
    run.run_step(
        1,
        "echo edited",
        Confirmation::Key,
        |l| seen.push(l.to_string()),
        &CancellationToken::new(),
        || None,
    )
    .await
    .unwrap();
    assert_eq!(seen, ["edited"]);
    let recs = audit.read_all().unwrap();
    assert!(recs[0].edited);
    assert_eq!(recs[0].command.as_deref(), Some("echo edited"));
}

#[test]
fn destructive_steps_need_typing_and_are_refused_read_only() {
    let rb = Arc::new(parse::parse("test", RB).unwrap());
    let (plain, destructive) = (0, 2);
    let dir = tempfile::tempdir().unwrap();
    let driver = |t: Target, read_only: bool| {
        Driver::new(
            rb.clone(),
            t,
            read_only,
            AuditLog::new(dir.path().join("audit.jsonl")),
        )
        .unwrap()
    };
    let d = driver(target(false), false);
    let cmd = |i: usize| rb.steps[i].command.clone();
    let req = d.request(plain, &cmd(plain)).unwrap();
    assert_eq!(d.confirm(&req, &Answer::YesFlag), Ok(Confirmation::YesFlag));
    let req = d.request(destructive, &cmd(destructive)).unwrap();
    assert_eq!(req.needs, Needs::Typed("staging".into()));
    assert!(
        d.confirm(&req, &Answer::YesFlag)
            .unwrap_err()
            .message
            .contains("--yes never covers")
    );
    assert!(d.confirm(&req, &Answer::Key).is_err());
    assert!(
        d.confirm(&req, &Answer::Typed("production".into()))
            .is_err()
    );
    assert_eq!(
        d.confirm(&req, &Answer::Typed("staging".into())),
        Ok(Confirmation::Typed)
    );
    assert!(
        driver(target(true), false)
            .request(destructive, &cmd(destructive))
            .unwrap_err()
            .message
            .contains("read-only")
    );
    assert!(
        driver(target(false), true)
            .request(destructive, &cmd(destructive))
            .unwrap_err()
            .message
            .contains("--read-only")
    );
    let ro = driver(target(true), true);
    assert!(
        ro.request(plain, &cmd(plain)).is_ok(),
        "read-only still runs plain steps"
    );
    assert!(
        ro.request(plain, "rm -rf /var/lib/postgresql")
            .unwrap_err()
            .message
            .contains("edited"),
        "an edit can turn a plain step into a destructive one: refused read-only"
    );
}

#[tokio::test]
async fn a_cancelled_step_is_recorded_with_its_signal() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let rb = Arc::new(parse::parse("test", "```sh {name=long}\nsleep 30\n```\n").unwrap());
    let mut run = Run::new(
        rb.clone(),
        target(false),
        RunVars::for_target(&target(false)),
        audit.clone(),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let o = run
        .run_step(
            0,
            &rb.steps[0].command,
            Confirmation::Key,
            |_| {},
            &cancel,
            || None,
        )
        .await
        .unwrap();
    assert_eq!(o.ending, Ending::Cancelled);
    assert_eq!(run.states[0], StepState::Failed("cancelled".into()));
    let recs = audit.read_all().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].signal.as_deref(), Some("cancelled"));
    assert_eq!(recs[1].exit_code, None);
}

async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<opsdeck::runbook::session::RunEvent>,
    pred: fn(&opsdeck::runbook::session::RunEvent) -> bool,
) -> opsdeck::runbook::session::RunEvent {
    use opsdeck::runbook::session::RunEvent;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the executor answers")
            .expect("the executor runs");
        if pred(&ev) {
            return ev;
        }
        assert!(
            !matches!(&ev, RunEvent::Output { lines, .. } if lines.iter().any(|l| l == "hello")),
            "the step ran before its override"
        );
    }
}

/// The console's executor on a cluster whose API is unreachable and whose audit log cannot be
/// written: each refusal asks for the typed cluster name (nothing runs before), the overrides
/// run the step with its records on screen, and the lock goes when the run is finished.
#[tokio::test]
async fn the_console_asks_for_typed_overrides_and_releases_the_lock_when_the_run_ends() {
    use opsdeck::runbook::session::{Override, RunCommand, RunEvent, executor};
    let dir = tempfile::tempdir().unwrap();
    // An API that refuses connections: the Lease cannot be taken.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: staging\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: staging\n",
    )
    .unwrap();
    // The audit path is a directory: no record can be written.
    let audit = dir.path().join("audit.jsonl");
    std::fs::create_dir_all(&audit).unwrap();
    let locks = dir.path().join("locks");
    let config = opsdeck::config::Config {
        audit_log: audit,
        lock_dir: locks.clone(),
        clusters: vec![opsdeck::config::ClusterConfig {
            name: "staging".into(),
            kubeconfig: Some(kubeconfig),
            ..Default::default()
        }],
        ..Default::default()
    };
    let rb = Arc::new(parse::parse("one", "```sh {name=hello}\necho hello\n```\n").unwrap());
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let exec = tokio::spawn(executor(config, false, cmd_rx, ev_tx));
    let step = RunCommand::Step {
        runbook: rb.clone(),
        cluster: 0,
        index: 0,
        command: "echo hello".into(),
        confirmation: Confirmation::Key,
    };
    cmd_tx.send(step.clone()).unwrap();
    let RunEvent::NeedsOverride { kind, then, .. } =
        next_event(&mut ev_rx, |e| matches!(e, RunEvent::NeedsOverride { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(kind, Override::LocalLockOnly);
    assert_eq!(*then, step);
    // A wrong name accepts nothing.
    cmd_tx
        .send(RunCommand::Override {
            kind,
            typed: "production".into(),
            then: then.clone(),
        })
        .unwrap();
    next_event(&mut ev_rx, |e| matches!(e, RunEvent::Refused { .. })).await;
    assert!(
        opsdeck::runbook::lock::current_holder(&locks, "staging").is_none(),
        "no lock without the typed name"
    );
    cmd_tx
        .send(RunCommand::Override {
            kind,
            typed: "staging".into(),
            then,
        })
        .unwrap();
    // The lock is taken; then the record cannot be written: nothing ran, asked again.
    let RunEvent::NeedsOverride { kind, then, .. } =
        next_event(&mut ev_rx, |e| matches!(e, RunEvent::NeedsOverride { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(kind, Override::Unrecorded);
    next_event(&mut ev_rx, |e| matches!(e, RunEvent::StepFinished { .. })).await;
    assert!(
        opsdeck::runbook::lock::current_holder(&locks, "staging").is_some(),
        "the run is open: its lock is held"
    );
    cmd_tx
        .send(RunCommand::Override {
            kind,
            typed: "staging".into(),
            then,
        })
        .unwrap();
    next_event(&mut ev_rx, |e| matches!(e, RunEvent::StepStarted { .. })).await;
    let mut output = Vec::new();
    loop {
        match next_event(&mut ev_rx, |_| true).await {
            RunEvent::Output { lines, .. } => output.extend(lines),
            RunEvent::StepFinished { state, .. } => {
                assert_eq!(state, StepState::Ok, "{output:?}");
                break;
            }
            _ => {}
        }
    }
    assert!(output.iter().any(|l| l == "hello"), "{output:?}");
    assert!(
        output.iter().any(|l| l.contains("NOT RECORDED")),
        "the records are shown to copy: {output:?}"
    );
    assert!(
        output
            .iter()
            .any(|l| l.contains("\"event\":\"step_started\"")),
        "{output:?}"
    );
    next_event(&mut ev_rx, |e| matches!(e, RunEvent::Finished)).await;
    assert!(
        opsdeck::runbook::lock::current_holder(&locks, "staging").is_none(),
        "a finished run holds no lock"
    );
    cmd_tx.send(RunCommand::Shutdown("test".into())).unwrap();
    exec.await.unwrap();
}
