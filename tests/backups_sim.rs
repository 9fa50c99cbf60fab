//! The Backups source against the simulated fleet: CronJob and Job status through the
//! simulated Kubernetes API, both S3 destinations through the simulated store (with its
//! signature checks), and the fleet's silent failure raised as a finding.

use opsdeck::config::ClusterConfig;
use opsdeck::model::backups::{JobState, findings, to_json};
use opsdeck::sim::{Fleet, SimOptions};
use opsdeck::sources::backups::s3::{S3Error, S3Lister};
use opsdeck::sources::backups::{BackupsConfig, CronJobWatches, initial_statuses, poll_all};

#[tokio::test]
async fn fleet_backups_show_cronjobs_destinations_and_the_silent_one() {
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet");
    assert!(
        fleet
            .endpoints()
            .iter()
            .any(|(k, v)| k == "s3" && v.starts_with("http://127.0.0.1:"))
    );
    let loaded = opsdeck::config::Config::load(fleet.config_path()).expect("fleet config");
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.to_string().contains("backups")),
        "{:?}",
        loaded.warnings
    );
    let prod = loaded
        .config
        .cluster("production")
        .expect("production")
        .clone();
    let config =
        BackupsConfig::from_table(prod.backups.as_ref().expect("backups table")).expect("config");
    let mut statuses = initial_statuses(&config);
    let watches = CronJobWatches::default();
    let snap = poll_all(&prod, &config, &mut statuses, &watches).await;
    for s in &snap.sources {
        assert!(s.stale.is_none(), "{}: {:?}", s.name, s.stale);
    }
    let cron = &snap.sources[0];
    assert_eq!(cron.cronjobs.len(), 3, "{:?}", cron.cronjobs);
    let afternoon = cron
        .cronjobs
        .iter()
        .find(|c| c.name == "postgres-backup-afternoon")
        .expect("afternoon");
    assert!(
        matches!(&afternoon.last_job.as_ref().expect("job").state, JobState::Failed { reason } if reason.contains("BackoffLimitExceeded")),
        "{afternoon:?}"
    );
    assert!(afternoon.last_schedule.is_some() && afternoon.last_successful.is_some());
    let minio = &snap.sources[1];
    let b2 = &snap.sources[2];
    assert!(minio.count >= 19 && minio.count <= 21, "{}", minio.count);
    assert_eq!(b2.total + 2, minio.total);
    let size = minio.newest.as_ref().and_then(|n| n.size).expect("size");
    assert!((40_000_000..=60_000_000).contains(&size), "{size}");
    // The VPS disk is kept under the fleet's directory: read locally, same runs as MinIO.
    assert!(!snap.sources[3].not_local);
    assert_eq!(snap.sources[3].total, minio.total);
    let f = findings(&snap, jiff::Timestamp::now());
    assert!(f.iter().any(|f| f.key == "b2:missing"), "{f:?}");
    assert!(
        f.iter().any(|f| f.key.starts_with("cronjobs:failed:")),
        "{f:?}"
    );
    assert!(!f.iter().any(|f| f.key == "minio:missing"), "{f:?}");
    let j = to_json(&snap);
    assert_ne!(j["sources"][3]["not_local"], true);
    assert_eq!(j["sources"].as_array().map(Vec::len), Some(4));

    // The simulated store checks signatures too.
    let url = fleet
        .endpoints()
        .into_iter()
        .find(|(k, _)| k == "s3")
        .map(|(_, v)| v)
        .expect("s3");
    let err = S3Lister::new(
        &url,
        "postgres-backups",
        "",
        "us-east-1",
        opsdeck::sim::s3::ACCESS_KEY.into(),
        "wrong".into(),
    )
    .expect("lister")
    .list_all()
    .await
    .expect_err("a wrong secret is refused");
    assert!(
        matches!(err, S3Error::Denied { ref code, .. } if code == "SignatureDoesNotMatch"),
        "{err:?}"
    );
    let err = S3Lister::new(
        &url,
        "nope",
        "",
        "us-east-1",
        opsdeck::sim::s3::ACCESS_KEY.into(),
        opsdeck::sim::s3::SECRET_KEY.into(),
    )
    .expect("lister")
    .list_all()
    .await
    .expect_err("no bucket");
    assert!(matches!(err, S3Error::NoBucket { .. }), "{err:?}");
    fleet.shutdown().await;
}

/// After the first poll the CronJob source reads its watches: a Job created later shows up,
/// and no poll lists CronJobs or Jobs again.
#[tokio::test]
async fn cronjob_source_follows_watches_without_listing_again() {
    use k8s_openapi::api::batch::v1::Job;
    let (fleet, prod, config) = production_cronjob_source().await;
    let mut statuses = initial_statuses(&config);
    let watches = CronJobWatches::default();
    let first = poll_all(&prod, &config, &mut statuses, &watches).await;
    assert!(
        first.sources[0].stale.is_none(),
        "{:?}",
        first.sources[0].stale
    );
    let sim = fleet.cluster("production").expect("sim production");
    let lists = |log: &[String]| {
        log.iter()
            .filter(|r| {
                r.starts_with("GET /apis/batch/v1/namespaces/database/")
                    && !r.contains("watch=true")
            })
            .count()
    };
    let after_first = sim.requests();
    assert_eq!(
        lists(&after_first),
        2,
        "one list each of CronJobs and Jobs: {after_first:?}"
    );

    let job: Job = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "postgres-backup-afternoon-manual-1",
            "namespace": "database",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                "name": "postgres-backup-afternoon", "uid": "x", "controller": true}],
        },
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "backup", "image": "postgres:16"}]}}},
    }))
    .expect("job");
    let client = opsdeck::sources::kube::client_for(&prod)
        .await
        .expect("client");
    kube::Api::<Job>::namespaced(client, "database")
        .create(&Default::default(), &job)
        .await
        .expect("create job");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let snap = poll_all(&prod, &config, &mut statuses, &watches).await;
        let afternoon = snap.sources[0]
            .cronjobs
            .iter()
            .find(|c| c.name == "postgres-backup-afternoon")
            .cloned()
            .expect("afternoon");
        if afternoon.last_job.as_ref().map(|j| j.name.as_str())
            == Some("postgres-backup-afternoon-manual-1")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new Job never showed: {afternoon:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = sim.requests();
    assert_eq!(lists(&log), 2, "no list after the first poll: {log:?}");
    fleet.shutdown().await;
}

/// A CronJob source whose API server goes away is stale with the reason and keeps its last
/// CronJobs; it recovers by itself when the server is back (the watches list again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_source_goes_stale_with_the_api_and_recovers() {
    let (fleet, prod, config) = production_cronjob_source().await;
    let mut statuses = initial_statuses(&config);
    let watches = CronJobWatches::default();
    let first = poll_all(&prod, &config, &mut statuses, &watches).await;
    assert!(first.sources[0].stale.is_none());
    assert_eq!(first.sources[0].cronjobs.len(), 3);

    let sim = fleet.cluster("production").expect("sim production");
    sim.kill().await;
    let until = |what: &'static str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        move || assert!(std::time::Instant::now() < deadline, "timed out: {what}")
    };
    let check = until("the source going stale");
    let stale = loop {
        let snap = poll_all(&prod, &config, &mut statuses, &watches).await;
        if let Some(s) = snap.sources[0].stale.clone() {
            break (s, snap);
        }
        check();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        stale.0.reason.contains("listing") && stale.0.reason.contains("database"),
        "{:?}",
        stale.0.reason
    );
    assert_eq!(stale.1.sources[0].cronjobs.len(), 3, "last good data kept");

    sim.restart().await.expect("restart");
    let check = until("the source recovering");
    loop {
        let snap = poll_all(&prod, &config, &mut statuses, &watches).await;
        if snap.sources[0].stale.is_none() {
            assert_eq!(snap.sources[0].cronjobs.len(), 3);
            break;
        }
        check();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    fleet.shutdown().await;
}

/// A paused fleet, production's cluster config and its backups config with only the first
/// source (the CronJobs).
async fn production_cronjob_source() -> (Fleet, ClusterConfig, BackupsConfig) {
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet");
    let loaded = opsdeck::config::Config::load(fleet.config_path()).expect("fleet config");
    let prod = loaded
        .config
        .cluster("production")
        .expect("production")
        .clone();
    let mut config =
        BackupsConfig::from_table(prod.backups.as_ref().expect("backups table")).expect("config");
    config.sources.truncate(1);
    (fleet, prod, config)
}
