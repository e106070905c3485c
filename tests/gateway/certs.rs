//! Certificates for the TLS tests, made by `openssl` in a test's directory: `ca.pem` (which
//! signed `server.pem`/`server.key`, valid for 127.0.0.1 and localhost, and the client
//! certificate `client.pem`/`client.key` for mutual TLS) and `other-ca.pem`, which signed
//! nothing.

use std::path::Path;
use std::process::{Command, Stdio};

pub fn make(dir: &Path) {
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed")
            .success();
        assert!(ok, "openssl {args:?}");
    };
    for ca in ["ca", "other-ca"] {
        let subject = format!("/CN=switchyard test {ca}");
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
            "-keyout", &key, "-out", &pem,
        ]);
    }
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("san.ext");
    // An extension makes it X.509 v3, as rustls requires of a client certificate too.
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("client.ext");
    // A key and a certificate for `name`, signed by `ca`, with the extensions of `ext`.
    let signed = |name: &str, subject: &str, ext: &str| {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out", &csr,
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            &pem,
        ]);
    };
    signed("server", "/CN=127.0.0.1", "san.ext");
    signed("client", "/CN=switchyard gateway", "client.ext");
}
