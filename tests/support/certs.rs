//! Test certificates made with the `openssl` command (Debian package `openssl`): two CAs,
//! `good` and `other`, and a server certificate for 127.0.0.1 signed by `good`.

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (install the Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `good-ca.crt`, `other-ca.crt`, `server.crt` and `server.key` into `dir`.
pub fn make(dir: &Path) {
    for ca in ["good", "other"] {
        let (key, crt, subj) = (
            format!("{ca}-ca.key"),
            format!("{ca}-ca.crt"),
            format!("/CN={ca} test CA"),
        );
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt,
                "-days", "2", "-subj", &subj,
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write ext.cnf");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "good-ca.crt",
            "-CAkey",
            "good-ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}
