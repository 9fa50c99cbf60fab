//! The S3 source against a real S3-compatible server that checks request signatures: moto's
//! server (PyPI `moto[server]`) on a free loopback port, with IAM authentication turned on
//! after the set-up, so a wrong secret key is refused as a real store would refuse it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opsdeck::config::ClusterConfig;
use opsdeck::model::backups::{SourceKind, SourceStatus};
use opsdeck::sources::backups::s3::{S3Error, S3Lister, tag};
use opsdeck::sources::backups::{BackupsConfig, poll_source};

const REGION: &str = "us-east-1";

struct Moto {
    child: Child,
    base: String,
    http: reqwest::Client,
    access: String,
    secret: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// An unchecked `Authorization` header, only for routing while authentication is off.
fn routing_auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=00"
    )
}

impl Moto {
    /// Starts moto, creates an IAM user allowed `s3:*` with an access key, runs `setup`
    /// (buckets and objects) and then turns signature checks on.
    async fn start() -> Moto {
        let bin = std::env::var("OPSDECK_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        // The test's own set-up client; the lister builds its TLS without a process default.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        for _attempt in 0..5 {
            let port = free_port();
            let child = match Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(e) => panic!(
                    "cannot start {bin} ({e}): these tests need moto's S3 server; install it with `pip install 'moto[server]'` (scripts/test.sh does)"
                ),
            };
            let mut moto = Moto {
                child,
                base: format!("http://127.0.0.1:{port}"),
                http: http.clone(),
                access: String::new(),
                secret: String::new(),
            };
            for _ in 0..150 {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break; // port taken, most likely: try another
                }
                if http
                    .get(format!("{}/moto-api/data.json", moto.base))
                    .send()
                    .await
                    .is_ok()
                {
                    moto.create_user().await;
                    return moto;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("moto_server did not start on a free loopback port");
    }

    async fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut all = vec![("Version", "2010-05-08")];
        all.extend_from_slice(params);
        let r = self
            .http
            .post(format!("{}/", self.base))
            .header("authorization", routing_auth("iam"))
            .form(&all)
            .send()
            .await
            .expect("IAM request");
        assert!(r.status().is_success(), "IAM {params:?}: {}", r.status());
        r.text().await.expect("IAM body")
    }

    async fn create_user(&mut self) {
        self.iam(&[("Action", "CreateUser"), ("UserName", "opsdeck")])
            .await;
        let key = self
            .iam(&[("Action", "CreateAccessKey"), ("UserName", "opsdeck")])
            .await;
        self.access = tag(&key, "AccessKeyId").expect("AccessKeyId");
        self.secret = tag(&key, "SecretAccessKey").expect("SecretAccessKey");
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "opsdeck"),
            ("PolicyName", "s3-all"),
            ("PolicyDocument", policy),
        ])
        .await;
    }

    async fn put(&self, path: &str, body: Vec<u8>) {
        let r = self
            .http
            .put(format!("{}/{path}", self.base))
            .header("authorization", routing_auth("s3"))
            .body(body)
            .send()
            .await
            .expect("PUT");
        assert!(r.status().is_success(), "PUT {path}: {}", r.status());
    }

    async fn enable_auth(&self) {
        let r = self
            .http
            .post(format!("{}/moto-api/reset-auth", self.base))
            .body("0")
            .send()
            .await
            .expect("reset-auth");
        assert!(r.status().is_success());
    }

    fn lister(&self, bucket: &str, prefix: &str, secret: &str) -> S3Lister {
        S3Lister::new(
            &self.base,
            bucket,
            prefix,
            REGION,
            self.access.clone(),
            secret.to_string(),
        )
        .expect("lister")
    }
}

#[tokio::test]
async fn newest_is_by_last_modified_with_size_age_and_count() {
    let moto = Moto::start().await;
    moto.put("postgres-backups", vec![]).await;
    // Key order and time order disagree: the newest by LastModified is the "a_" key.
    moto.put("postgres-backups/prod_z_first.sql.gz", vec![0; 3000])
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    moto.put("postgres-backups/prod_m_middle.sql.gz", vec![0; 4000])
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    moto.put("postgres-backups/prod_a_newest.sql.gz", vec![0; 5000])
        .await;
    moto.put("postgres-backups/other/outside-prefix.sql.gz", vec![0; 10])
        .await;
    moto.enable_auth().await;

    // A prefix without '/': moto 5 mis-checks signatures whose query holds an encoded '/'
    // (boto3's own `Prefix="prod/"` is refused by it too); real stores accept it.
    // Through the configured source, with the keys in 0600 files.
    let dir = tempfile::tempdir().expect("tempdir");
    let (ak, sk) = (dir.path().join("ak"), dir.path().join("sk"));
    std::fs::write(&ak, format!("{}\n", moto.access)).expect("ak");
    std::fs::write(&sk, &moto.secret).expect("sk");
    let table: toml::Table = toml::from_str(&format!(
        "retention = \"1h\"\n[[source]]\nkind = \"s3\"\nname = \"minio\"\nurl = {:?}\nbucket = \"postgres-backups\"\nprefix = \"prod_\"\n\
         access_key_file = {:?}\nsecret_key_file = {:?}\n",
        moto.base,
        ak.display().to_string(),
        sk.display().to_string()
    ))
    .expect("toml");
    let config = BackupsConfig::from_table(&table).expect("config");
    let mut status = SourceStatus::new("minio", SourceKind::S3, config.sources[0].location());
    poll_source(
        &ClusterConfig::default(),
        &config,
        &config.sources[0],
        &mut status,
        &Default::default(),
    )
    .await;
    assert!(status.stale.is_none(), "{:?}", status.stale);
    let newest = status.newest.clone().expect("a newest backup");
    assert_eq!(newest.name, "prod_a_newest.sql.gz");
    assert_eq!(newest.size, Some(5000));
    let age = jiff::Timestamp::now().as_second() - newest.at.as_second();
    assert!((0..120).contains(&age), "age {age}s");
    assert_eq!((status.count, status.total), (3, 3));
    let names: Vec<&str> = status.recent.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "prod_a_newest.sql.gz",
            "prod_m_middle.sql.gz",
            "prod_z_first.sql.gz"
        ]
    );
}

#[tokio::test]
async fn listing_pages_past_a_thousand_objects() {
    use futures::StreamExt as _;
    let moto = Moto::start().await;
    moto.put("many", vec![]).await;
    futures::stream::iter(0..1005)
        .map(|i| moto.put_owned(format!("many/backup_{i:04}.sql.gz"), vec![1; 1 + i % 7]))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    moto.enable_auth().await;
    let lister = moto.lister("many", "", &moto.secret);
    let first = lister.page(None).await.expect("first page");
    assert_eq!(first.objects.len(), 1000);
    assert!(first.next.is_some(), "a continuation token after 1000 keys");
    let all = lister.list_all().await.expect("all pages");
    assert_eq!(all.len(), 1005);
}

impl Moto {
    async fn put_owned(&self, path: String, body: Vec<u8>) {
        self.put(&path, body).await
    }
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_a_clear_error() {
    let moto = Moto::start().await;
    moto.put("postgres-backups", vec![]).await;
    moto.enable_auth().await;
    // The right key works (so the refusal below is the signature, not the set-up) ...
    moto.lister("postgres-backups", "", &moto.secret)
        .list_all()
        .await
        .expect("signed with the right secret");
    // ... a wrong secret does not.
    let err = moto
        .lister("postgres-backups", "", "not-the-secret")
        .list_all()
        .await
        .expect_err("a wrong secret must be refused");
    let S3Error::Denied { status, code, .. } = &err else {
        panic!("expected Denied, got {err:?}");
    };
    assert_eq!((*status, code.as_str()), (403, "SignatureDoesNotMatch"));
    let text = err.to_string();
    assert!(text.contains("check access_key and secret_key"), "{text}");
    assert!(
        !text.contains("not-the-secret"),
        "the secret leaked: {text}"
    );
    // An unknown access key too.
    let err = S3Lister::new(
        &moto.base,
        "postgres-backups",
        "",
        REGION,
        "AKIDUNKNOWN".into(),
        "x".into(),
    )
    .expect("lister")
    .list_all()
    .await
    .expect_err("an unknown key must be refused");
    assert!(matches!(err, S3Error::Denied { .. }), "{err:?}");
}

#[tokio::test]
async fn a_missing_bucket_says_so() {
    let moto = Moto::start().await;
    moto.enable_auth().await;
    let err = moto
        .lister("no-such-bucket", "", &moto.secret)
        .list_all()
        .await
        .expect_err("no bucket");
    assert!(matches!(err, S3Error::NoBucket { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no-such-bucket does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_store_is_stale_with_the_reason() {
    let port = free_port();
    let err = S3Lister::new(
        &format!("http://127.0.0.1:{port}"),
        "b",
        "",
        REGION,
        "a".into(),
        "s".into(),
    )
    .expect("lister")
    .list_all()
    .await
    .expect_err("nothing listens");
    assert!(matches!(err, S3Error::Unreachable { .. }), "{err:?}");
}

/// B2 as the fleet uses it: one bucket, the environments under `staging/` and `production/`,
/// and (fork) `ppc_db` dumps beside the `goapps` ones. The source lists with the `<env>/`
/// prefix and the `*_goapps_*.sql.gz` pattern. moto mis-checks the signature of a query holding
/// an encoded `/`, so only the part before the first `/` goes to the server and the rest is
/// matched client-side; the empty newest dump is then the newest and a critical finding.
#[tokio::test]
async fn b2_env_prefix_and_goapps_pattern() {
    let moto = Moto::start().await;
    moto.put("goapps-backups", vec![]).await;
    let put =
        |key: &str, size: usize| moto.put_owned(format!("goapps-backups/{key}"), vec![7; size]);
    put("staging/staging_goapps_20261124_230005.sql.gz", 9000).await;
    put("production/production_goapps_20261123_150005.sql.gz", 5000).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put("production/production_goapps_20261123_230005.sql.gz", 5100).await;
    put("production/production_ppc_db_20261123_230005.sql.gz", 300).await;
    put("productionX/production_goapps_20261124_230005.sql.gz", 7000).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put("production/production_goapps_20261124_070005.sql.gz", 20).await;
    moto.enable_auth().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let (ak, sk) = (dir.path().join("ak"), dir.path().join("sk"));
    std::fs::write(&ak, format!("{}\n", moto.access)).expect("ak");
    std::fs::write(&sk, &moto.secret).expect("sk");
    let table: toml::Table = toml::from_str(&format!(
        "[[source]]\nkind = \"s3\"\nname = \"b2\"\nurl = {:?}\nbucket = \"goapps-backups\"\nprefix = \"production/\"\n\
         pattern = \"*_goapps_*.sql.gz\"\naccess_key_file = {:?}\nsecret_key_file = {:?}\n",
        moto.base,
        ak.display().to_string(),
        sk.display().to_string()
    ))
    .expect("toml");
    let config = BackupsConfig::from_table(&table).expect("config");
    let mut status = SourceStatus::new("b2", SourceKind::S3, config.sources[0].location());
    poll_source(
        &ClusterConfig::default(),
        &config,
        &config.sources[0],
        &mut status,
        &Default::default(),
    )
    .await;
    assert!(status.stale.is_none(), "{:?}", status.stale);
    let names: Vec<&str> = status.recent.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "production/production_goapps_20261124_070005.sql.gz",
            "production/production_goapps_20261123_230005.sql.gz",
            "production/production_goapps_20261123_150005.sql.gz",
        ]
    );
    let snap = opsdeck::model::backups::BackupsSnapshot {
        max_age: Duration::from_secs(8 * 3600),
        retention: Duration::from_secs(7 * 86_400),
        missing_after: Duration::from_secs(2 * 3600),
        sources: vec![status],
        taken_at: jiff::Timestamp::now(),
    };
    let f = opsdeck::model::backups::findings(&snap, jiff::Timestamp::now());
    let small = f
        .iter()
        .find(|f| f.key == "b2:small")
        .expect("a size finding");
    assert_eq!(small.severity, opsdeck::model::Severity::Crit);
    assert!(
        small
            .message
            .contains("production/production_goapps_20261124_070005.sql.gz is 20 B"),
        "{}",
        small.message
    );
}
