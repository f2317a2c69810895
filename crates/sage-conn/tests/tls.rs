//! Every sslmode against a real PostgreSQL server that serves TLS with a certificate for
//! `localhost` signed by a throwaway CA.

use sage_conn::{ErrorKind, PgSettings, SslMode};
use sage_testkit::{ClusterOptions, PgCluster};

async fn uses_tls(settings: &PgSettings) -> Result<bool, sage_conn::Error> {
    let client = sage_conn::connect(settings).await?;
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    Ok(row.get(0))
}

fn with(cluster: &PgCluster, host: &str, mode: SslMode, root: bool) -> PgSettings {
    let mut s = cluster.admin_settings();
    s.host = host.to_string();
    s.sslmode = mode;
    s.sslrootcert = if root { cluster.ca_cert() } else { None };
    s
}

#[tokio::test]
async fn sslmodes_behave_like_libpq() {
    let cluster = PgCluster::start(ClusterOptions { tls: true, ..ClusterOptions::default() }).unwrap();
    assert!(!uses_tls(&with(&cluster, "127.0.0.1", SslMode::Disable, false)).await.unwrap());
    assert!(uses_tls(&with(&cluster, "127.0.0.1", SslMode::Prefer, false)).await.unwrap());
    // require encrypts without judging the certificate.
    assert!(uses_tls(&with(&cluster, "127.0.0.1", SslMode::Require, false)).await.unwrap());
    // verify-full: the chain must lead to the CA and the name must match.
    assert!(uses_tls(&with(&cluster, "localhost", SslMode::VerifyFull, true)).await.unwrap());
    let wrong_name = uses_tls(&with(&cluster, "127.0.0.1", SslMode::VerifyFull, true)).await.unwrap_err();
    assert_eq!(wrong_name.kind(), ErrorKind::Tls, "{wrong_name}");
    // Which check failed, in words, not rustls's enum names.
    assert!(wrong_name.to_string().contains("not valid for host name 127.0.0.1"), "{wrong_name}");
    assert!(!wrong_name.to_string().contains("NotValidForName"), "{wrong_name}");
    // verify-ca checks the chain only.
    assert!(uses_tls(&with(&cluster, "127.0.0.1", SslMode::VerifyCa, true)).await.unwrap());
    // Without our CA, the public web roots do not trust a private certificate.
    let untrusted = uses_tls(&with(&cluster, "localhost", SslMode::VerifyFull, false)).await.unwrap_err();
    assert_eq!(untrusted.kind(), ErrorKind::Tls, "{untrusted}");
    assert!(untrusted.to_string().contains("sslrootcert"), "{untrusted}");
    assert!(untrusted.to_string().contains("unknown issuer"), "{untrusted}");
    assert!(!untrusted.to_string().contains("UnknownIssuer"), "{untrusted}");
}

#[tokio::test]
async fn require_against_a_server_without_tls_fails_clearly() {
    let cluster = PgCluster::start(ClusterOptions::default()).unwrap();
    let err = uses_tls(&with(&cluster, "127.0.0.1", SslMode::Require, false)).await.unwrap_err();
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(!err.to_string().contains(cluster.admin_settings().password.unwrap().expose()), "{err}");
}

#[tokio::test]
async fn an_expired_server_certificate_is_named_as_such() {
    let options = ClusterOptions { tls: true, expired_certificate: true, ..ClusterOptions::default() };
    let cluster = PgCluster::start(options).unwrap();
    let expired = uses_tls(&with(&cluster, "localhost", SslMode::VerifyFull, true)).await.unwrap_err();
    assert_eq!(expired.kind(), ErrorKind::Tls, "{expired}");
    assert!(expired.to_string().contains("certificate has expired"), "{expired}");
    assert!(!expired.to_string().contains("Expired"), "{expired}");
    // require does not judge the certificate, as libpq does.
    assert!(uses_tls(&with(&cluster, "localhost", SslMode::Require, false)).await.unwrap());
}
