//! `options=-c name=value` reaches every session the settings open, on a real server.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_in_the_url_set_the_sessions_settings() {
    let db = sage_testkit::database().await.unwrap();
    let url = format!("{}&options=-c%20statement_timeout%3D1234", db.url());
    let settings = sage_conn::Settings::parse_url("test", &url, sage_conn::Origin::Flag).unwrap();
    let sage_conn::Target::Postgres(pg) = &settings.target else { panic!("a PostgreSQL URL") };
    let client = sage_conn::connect(pg).await.unwrap();
    let shown: String = client.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
    assert_eq!(shown, "1234ms");
    // Without the option the server's default stands: the setting above came from the URL.
    let plain = sage_conn::connect(db.settings()).await.unwrap();
    let shown: String = plain.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
    assert_eq!(shown, "0");
}
