//! End-to-end tests of the serving module over real TLS on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use http::StatusCode;
use kompox_serve::{
    CertKeyPem, CertifiedCa, FileReloader, ReloadableTls, ServeOptions, Server, TlsFiles,
    Transport, generate_ca, issue_client_cert, issue_serving_cert,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn serving(ca: &CertifiedCa) -> CertKeyPem {
    issue_serving_cert(
        ca,
        &["localhost", "kompox.kompox-system.svc"],
        &[LOCALHOST],
        1,
    )
    .unwrap()
}

struct Pki {
    ca: CertifiedCa,
    client_ca: CertifiedCa,
    serving: CertKeyPem,
}

fn pki() -> Pki {
    let ca = generate_ca("kompox-serving-ca").unwrap();
    let client_ca = generate_ca("front-proxy-ca").unwrap();
    let serving = serving(&ca);
    Pki {
        ca,
        client_ca,
        serving,
    }
}

fn tls_with_client_ca(p: &Pki) -> ReloadableTls {
    ReloadableTls::new(
        p.serving.cert_pem.as_bytes(),
        p.serving.key_pem.as_bytes(),
        Some(p.client_ca.cert_pem().as_bytes()),
    )
    .unwrap()
}

fn tls_without_client_ca(p: &Pki) -> ReloadableTls {
    ReloadableTls::new(
        p.serving.cert_pem.as_bytes(),
        p.serving.key_pem.as_bytes(),
        None,
    )
    .unwrap()
}

/// Writes `pair` to the serving-pair files of `files`.
fn write_pair(files: &TlsFiles, pair: &CertKeyPem) {
    std::fs::write(&files.cert, &pair.cert_pem).unwrap();
    std::fs::write(&files.key, &pair.key_pem).unwrap();
}

/// `tls.crt` and `tls.key` in `dir` holding `pair`, and `ca.crt` holding `client_ca` if any.
fn tls_files(dir: &TempDir, pair: &CertKeyPem, client_ca: Option<&CertifiedCa>) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.0.join("tls.crt"),
        key: dir.0.join("tls.key"),
        client_ca: client_ca.map(|_| dir.0.join("ca.crt")),
    };
    write_pair(&files, pair);
    if let (Some(path), Some(ca)) = (&files.client_ca, client_ca) {
        std::fs::write(path, ca.cert_pem()).unwrap();
    }
    files
}

#[tokio::test]
async fn serving_cert_verifies_for_each_san_and_not_for_others() {
    let p = pki();
    let server = TestServer::start(tls_with_client_ca(&p)).await;
    for name in ["localhost", "kompox.kompox-system.svc", "127.0.0.1"] {
        let mut opts = ClientOpts::new(p.ca.cert_pem());
        opts.server_name = name;
        let (status, body) = get_once(server.addr, &opts, "/whoami").await.unwrap();
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(body.starts_with("cn=-;orgs=;chain=0;"), "{name}: {body}");
    }
    let mut opts = ClientOpts::new(p.ca.cert_pem());
    opts.server_name = "other.example";
    let err = connect(server.addr, &opts).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");

    // A client trusting another CA rejects the server.
    let err = connect(server.addr, &ClientOpts::new(p.client_ca.cert_pem()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn no_client_cert_is_accepted_with_no_peer_certificates() {
    let p = pki();
    let server = TestServer::start(tls_with_client_ca(&p)).await;
    let (status, body) = get_once(server.addr, &ClientOpts::new(p.ca.cert_pem()), "/whoami")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "cn=-;orgs=;chain=0;version=HTTP/1.1");
    server.stop().await;
}

#[tokio::test]
async fn verified_client_cert_is_exposed_with_cn_and_orgs() {
    let p = pki();
    let server = TestServer::start(tls_with_client_ca(&p)).await;
    let proxy = issue_client_cert(
        &p.client_ca,
        "front-proxy-client",
        &["system:masters", "ops"],
        1,
    )
    .unwrap();
    let mut opts = ClientOpts::new(p.ca.cert_pem());
    opts.identity = Some(&proxy);
    let (status, body) = get_once(server.addr, &opts, "/whoami").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "cn=front-proxy-client;orgs=system:masters,ops;chain=1;version=HTTP/1.1"
    );
    server.stop().await;
}

#[tokio::test]
async fn client_cert_from_another_ca_is_rejected_at_the_handshake() {
    let p = pki();
    let server = TestServer::start(tls_with_client_ca(&p)).await;
    let rogue_ca = generate_ca("rogue").unwrap();
    let rogue = issue_client_cert(&rogue_ca, "front-proxy-client", &[] as &[&str], 1).unwrap();

    // TLS 1.2: the server's verdict arrives before the client's handshake completes.
    let mut opts = ClientOpts::new(p.ca.cert_pem());
    opts.identity = Some(&rogue);
    opts.tls12_only = true;
    let err = connect(server.addr, &opts).await.unwrap_err();
    assert!(err.to_string().contains("alert"), "{err}");

    // TLS 1.3: the client finishes first, then reads the server's fatal alert.
    opts.tls12_only = false;
    let err = get_once(server.addr, &opts, "/whoami").await.unwrap_err();
    assert!(err.contains("alert") || err.contains("Alert"), "{err}");

    // Neither request reached the handler, and the server still serves.
    assert_eq!(server.probe.hits.load(Ordering::SeqCst), 0);
    let (status, _) = get_once(server.addr, &ClientOpts::new(p.ca.cert_pem()), "/whoami")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn client_cert_is_ignored_without_client_ca() {
    let p = pki();
    let tls = tls_without_client_ca(&p);
    let server = TestServer::start(tls).await;
    let user = issue_client_cert(&p.client_ca, "alice", &["devs"], 1).unwrap();
    let mut opts = ClientOpts::new(p.ca.cert_pem());
    opts.identity = Some(&user);
    let (_, body) = get_once(server.addr, &opts, "/whoami").await.unwrap();
    assert!(body.starts_with("cn=-;orgs=;chain=0;"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn() {
    let p = pki();
    let server = TestServer::start(tls_with_client_ca(&p)).await;
    let (status, body) = get_h2(server.addr, p.ca.cert_pem(), "/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with("version=HTTP/2.0"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn rotation_new_connections_see_new_cert_old_connection_stays_up() {
    let p = pki();
    let tls = tls_with_client_ca(&p);
    let server = TestServer::start(tls.clone()).await;
    let opts = ClientOpts::new(p.ca.cert_pem());
    let old_fp = fingerprint_of_pem(&p.serving.cert_pem);

    let old_stream = connect(server.addr, &opts).await.unwrap();
    assert_eq!(peer_fingerprint(&old_stream), old_fp);
    let mut old_conn = H1::new(old_stream).await.unwrap();
    assert_eq!(old_conn.get("/whoami").await.unwrap().0, StatusCode::OK);

    let rotated = serving(&p.ca);
    let new_fp = fingerprint_of_pem(&rotated.cert_pem);
    assert_ne!(old_fp, new_fp);
    tls.update(
        rotated.cert_pem.as_bytes(),
        rotated.key_pem.as_bytes(),
        Some(p.client_ca.cert_pem().as_bytes()),
    )
    .unwrap();

    let new_stream = connect(server.addr, &opts).await.unwrap();
    assert_eq!(peer_fingerprint(&new_stream), new_fp);
    let mut new_conn = H1::new(new_stream).await.unwrap();
    assert_eq!(new_conn.get("/whoami").await.unwrap().0, StatusCode::OK);

    // The connection opened before the rotation keeps working.
    assert_eq!(old_conn.get("/whoami").await.unwrap().0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn bad_update_keeps_the_old_config() {
    let p = pki();
    let tls = tls_with_client_ca(&p);
    let server = TestServer::start(tls.clone()).await;
    let opts = ClientOpts::new(p.ca.cert_pem());
    let old_fp = fingerprint_of_pem(&p.serving.cert_pem);
    let other = serving(&p.ca);

    let err = tls
        .update(b"garbage", p.serving.key_pem.as_bytes(), None)
        .unwrap_err();
    assert!(err.to_string().starts_with("serving certificate:"), "{err}");
    // New cert with the old key: mismatch.
    let err = tls
        .update(
            other.cert_pem.as_bytes(),
            p.serving.key_pem.as_bytes(),
            None,
        )
        .unwrap_err();
    assert!(err.to_string().starts_with("private key:"), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");

    let stream = connect(server.addr, &opts).await.unwrap();
    assert_eq!(peer_fingerprint(&stream), old_fp);
    server.stop().await;
}

#[tokio::test]
async fn file_reloader_picks_up_changed_files_and_survives_bad_ones() {
    let p = pki();
    let dir = TempDir::new("reload");
    let files = tls_files(&dir, &p.serving, Some(&p.client_ca));
    let tls = ReloadableTls::from_files(&files).unwrap();
    let server = TestServer::start(tls.clone()).await;
    let reloader = FileReloader::new(tls.clone(), files.clone());
    assert!(
        !reloader.check().unwrap(),
        "unchanged files must not reload"
    );

    let rotated = serving(&p.ca);
    write_pair(&files, &rotated);
    assert!(reloader.check().unwrap());
    let opts = ClientOpts::new(p.ca.cert_pem());
    let stream = connect(server.addr, &opts).await.unwrap();
    assert_eq!(
        peer_fingerprint(&stream),
        fingerprint_of_pem(&rotated.cert_pem)
    );

    // A half-done rotation (new cert, old key) is refused, naming the file; old config stays.
    let third = serving(&p.ca);
    std::fs::write(&files.cert, &third.cert_pem).unwrap();
    let err = reloader.check().unwrap_err().to_string();
    assert!(err.contains("tls.key"), "{err}");
    assert!(
        !err.contains("PRIVATE KEY-----"),
        "error leaks key material: {err}"
    );
    let stream = connect(server.addr, &opts).await.unwrap();
    assert_eq!(
        peer_fingerprint(&stream),
        fingerprint_of_pem(&rotated.cert_pem)
    );

    // A missing file is an I/O error naming it.
    std::fs::remove_file(&files.key).unwrap();
    let err = reloader.check().unwrap_err().to_string();
    assert!(
        err.starts_with("reading ") && err.contains("tls.key"),
        "{err}"
    );

    // Completing the rotation is picked up.
    std::fs::write(&files.key, &third.key_pem).unwrap();
    assert!(reloader.check().unwrap());
    let stream = connect(server.addr, &opts).await.unwrap();
    assert_eq!(
        peer_fingerprint(&stream),
        fingerprint_of_pem(&third.cert_pem)
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn file_reloader_run_polls_until_shutdown() {
    let p = pki();
    let dir = TempDir::new("run");
    let files = tls_files(&dir, &p.serving, None);
    let tls = ReloadableTls::from_files(&files).unwrap();
    let before = tls.current();
    write_pair(&files, &serving(&p.ca));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(FileReloader::new(tls.clone(), files).run(
        Duration::from_secs(5),
        async move {
            let _ = stop_rx.await;
        },
    ));
    // With paused time, the runtime advances the clock whenever every task is idle, so
    // this loop observes ticks deterministically; it is bounded by the step count.
    let mut swapped = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if !std::sync::Arc::ptr_eq(&before, &tls.current()) {
            swapped = true;
            break;
        }
    }
    assert!(swapped, "reloader never swapped the config");
    stop_tx.send(()).unwrap();
    bounded(task).await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let p = pki();
    let mut server = TestServer::start(tls_with_client_ca(&p)).await;
    let opts = ClientOpts::new(p.ca.cert_pem());
    let stream = connect(server.addr, &opts).await.unwrap();
    let mut conn = H1::new(stream).await.unwrap();

    let probe = server.probe.clone();
    let started = probe.slow_started.notified();
    let request = tokio::spawn(async move { conn.get("/slow").await });
    bounded(started).await;

    server.signal_shutdown();
    // The accept loop stops and closes the listener while the request is still running.
    let addr = server.addr;
    let refused = bounded(async {
        loop {
            match TcpStream::connect(addr).await {
                Err(_) => break,
                Ok(s) => {
                    drop(s);
                    tokio::task::yield_now().await;
                }
            }
        }
    });
    refused.await;
    assert!(
        !server.task.is_finished(),
        "serve returned before the request finished"
    );

    probe.slow_release.notify_one();
    let (status, body) = bounded(request).await.unwrap().unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "slow done"));
    bounded(&mut server.task).await.unwrap();
}

#[tokio::test]
async fn shutdown_grace_bounds_a_stuck_request() {
    let p = pki();
    for tls in [true, false] {
        let transport = if tls {
            Transport::from(tls_with_client_ca(&p))
        } else {
            Transport::Plain
        };
        let mut server = TestServer::start_with(
            transport,
            ServeOptions::default().shutdown_grace(Duration::from_millis(200)),
        )
        .await;
        let opts = ClientOpts::new(p.ca.cert_pem());
        let mut conn = if tls {
            H1::new(connect(server.addr, &opts).await.unwrap()).await
        } else {
            H1::new(TcpStream::connect(server.addr).await.unwrap()).await
        }
        .unwrap();
        let started = server.probe.slow_started.notified();
        let request = tokio::spawn(async move { conn.get("/slow").await });
        bounded(started).await;

        server.signal_shutdown();
        bounded(&mut server.task).await.unwrap();
        // The stuck request's connection was dropped.
        assert!(bounded(request).await.unwrap().is_err(), "tls: {tls}");
    }
}

#[tokio::test]
async fn silent_and_garbage_clients_do_not_block_the_loop() {
    let p = pki();
    let server = TestServer::start_with(
        tls_with_client_ca(&p),
        ServeOptions::default().handshake_timeout(Duration::from_millis(300)),
    )
    .await;
    let opts = ClientOpts::new(p.ca.cert_pem());

    // A client that connects and says nothing.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // A client that speaks plain HTTP to the TLS port.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    // Good clients are served meanwhile.
    let (status, _) = get_once(server.addr, &opts, "/whoami").await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // The garbage connection is closed after a failed handshake; the silent one by the
    // handshake timeout (read returns EOF or reset).
    let mut buf = [0u8; 64];
    let _ = bounded(async {
        loop {
            match plain.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    let n = bounded(silent.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "silent client not disconnected: {n:?}"
    );

    let (status, _) = get_once(server.addr, &opts, "/whoami").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let p = pki();
    let server = TestServer::start_with(
        tls_with_client_ca(&p),
        ServeOptions::default().header_read_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut stream = connect(server.addr, &ClientOpts::new(p.ca.cert_pem()))
        .await
        .unwrap();
    stream.write_all(b"GET /whoami HTTP/1.1\r\n").await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = Vec::new();
    // The server closes (possibly after a 408) without the request ever reaching the handler.
    let _ = bounded(stream.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains(" 200 "));
    assert_eq!(server.probe.hits.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn handler_panic_is_a_500_and_the_server_lives_on() {
    let p = pki();
    let server = TestServer::start(tls_with_client_ca(&p)).await;
    let opts = ClientOpts::new(p.ca.cert_pem());
    let stream = connect(server.addr, &opts).await.unwrap();
    let mut conn = H1::new(stream).await.unwrap();
    let (status, _) = conn.get("/panic").await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // Same connection still usable, and new ones too.
    assert_eq!(conn.get("/whoami").await.unwrap().0, StatusCode::OK);
    let (status, _) = get_h2(server.addr, p.ca.cert_pem(), "/panic").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        get_once(server.addr, &opts, "/whoami").await.unwrap().0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn client_ca_fed_separately_survives_file_reloads_of_the_serving_pair() {
    let p = pki();
    let dir = TempDir::new("split");
    let files = tls_files(&dir, &p.serving, None);
    let tls = ReloadableTls::from_files(&files).unwrap();
    let server = TestServer::start(tls.clone()).await;
    let user = issue_client_cert(&p.client_ca, "alice", &["devs"], 1).unwrap();
    let mut opts = ClientOpts::new(p.ca.cert_pem());
    opts.identity = Some(&user);
    let addr = server.addr;
    let whoami = async |opts: &ClientOpts<'_>| get_once(addr, opts, "/whoami").await.unwrap().1;
    // No client CA yet: the certificate is not requested.
    assert!(whoami(&opts).await.starts_with("cn=-;"));

    // The client CA arrives from elsewhere (e.g. a ConfigMap watch).
    tls.update_client_ca(Some(p.client_ca.cert_pem().as_bytes()))
        .unwrap();
    assert!(whoami(&opts).await.starts_with("cn=alice;orgs=devs;"));
    let err = tls.update_client_ca(Some(b"junk")).unwrap_err().to_string();
    assert!(err.starts_with("client CA bundle:"), "{err}");

    // Rotating the serving pair through the files keeps that client CA.
    let rotated = serving(&p.ca);
    write_pair(&files, &rotated);
    assert!(FileReloader::new(tls.clone(), files).check().unwrap());
    let stream = connect(server.addr, &opts).await.unwrap();
    assert_eq!(
        peer_fingerprint(&stream),
        fingerprint_of_pem(&rotated.cert_pem)
    );
    assert!(whoami(&opts).await.starts_with("cn=alice;orgs=devs;"));

    // Dropping the client CA stops requesting certificates.
    tls.update_client_ca(None).unwrap();
    assert!(whoami(&opts).await.starts_with("cn=-;"));
    server.stop().await;
}

/// A server that will be fed its client CA later (the aggregated API server) must not hand a
/// certificate-holding client a connection without its identity: kube-apiserver would pool it
/// and every later proxied request on it would be anonymous. While the CA is pending, such a
/// client's handshake fails; a client without a certificate (a health probe) is served.
#[tokio::test]
async fn pending_client_ca_refuses_certificates_until_the_bundle_arrives() {
    let p = pki();
    let tls = tls_without_client_ca(&p);
    tls.expect_client_ca().unwrap();
    let server = TestServer::start(tls.clone()).await;
    let proxy = issue_client_cert(&p.client_ca, "front-proxy-client", &[] as &[&str], 1).unwrap();
    let mut with_cert = ClientOpts::new(p.ca.cert_pem());
    with_cert.identity = Some(&proxy);
    let anonymous = ClientOpts::new(p.ca.cert_pem());

    for tls12_only in [true, false] {
        with_cert.tls12_only = tls12_only;
        let err = get_once(server.addr, &with_cert, "/whoami")
            .await
            .expect_err("a certificate was accepted before the client CA was loaded");
        assert!(err.contains("alert") || err.contains("Alert"), "{err}");
    }
    assert_eq!(server.probe.hits.load(Ordering::SeqCst), 0);
    let (status, body) = get_once(server.addr, &anonymous, "/whoami").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("cn=-;orgs=;chain=0;"), "{body}");

    // The bundle arrives: the same client now connects with its identity.
    tls.update_client_ca(Some(p.client_ca.cert_pem().as_bytes()))
        .unwrap();
    let (_, body) = get_once(server.addr, &with_cert, "/whoami").await.unwrap();
    assert!(body.starts_with("cn=front-proxy-client;"), "{body}");
    // Expecting it again once it is there changes nothing.
    tls.expect_client_ca().unwrap();
    let (_, body) = get_once(server.addr, &with_cert, "/whoami").await.unwrap();
    assert!(body.starts_with("cn=front-proxy-client;"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn plain_transport_serves_http1_and_h2c_without_peer_certificates() {
    let server = TestServer::start(Transport::Plain).await;
    let mut conn = H1::new(TcpStream::connect(server.addr).await.unwrap())
        .await
        .unwrap();
    let (status, body) = conn.get("/whoami").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "cn=-;orgs=;chain=0;version=HTTP/1.1");
    assert_eq!(
        conn.get("/panic").await.unwrap().0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(conn.get("/whoami").await.unwrap().0, StatusCode::OK);

    // HTTP/2 with prior knowledge, found by the preface.
    let (mut h2, h2_conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(TcpStream::connect(server.addr).await.unwrap()),
    )
    .await
    .unwrap();
    tokio::spawn(h2_conn);
    let req = http::Request::get(format!("http://{}/whoami", server.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = bounded(h2.send_request(req)).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);

    // A TLS client finds no TLS server.
    let ca = generate_ca("unused").unwrap();
    assert!(
        connect(server.addr, &ClientOpts::new(ca.cert_pem()))
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let first = Server::bind((LOCALHOST, 0).into(), Transport::Plain)
        .await
        .unwrap();
    let addr = first.local_addr().unwrap();
    let err = Server::bind(addr, Transport::Plain)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("listening on {addr}: ")), "{err}");
}

#[tokio::test]
async fn slow_body_gets_408_and_the_connection_closes() {
    let p = pki();
    let server = TestServer::start_with(
        tls_with_client_ca(&p),
        ServeOptions::default().body_read_timeout(Duration::from_millis(300)),
    )
    .await;
    let mut stream = connect(server.addr, &ClientOpts::new(p.ca.cert_pem()))
        .await
        .unwrap();
    let start = std::time::Instant::now();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\na")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let mut buf = Vec::new();
    // read_to_end returns only when the server closes the connection.
    bounded(stream.read_to_end(&mut buf)).await.unwrap();
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("did not arrive within"), "{text}");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // A body sent in time is read.
    let mut stream = connect(server.addr, &ClientOpts::new(p.ca.cert_pem()))
        .await
        .unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        .await
        .unwrap();
    let mut buf = Vec::new();
    bounded(stream.read_to_end(&mut buf)).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 200 ") && text.ends_with("3 bytes"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let p = pki();
    let server = TestServer::start_with(
        tls_with_client_ca(&p),
        ServeOptions::default()
            .idle_timeout(Duration::from_millis(400))
            .header_read_timeout(Duration::from_secs(30)),
    )
    .await;
    // HTTP/1.1: one request, then nothing; the server closes after the idle timeout.
    let opts = ClientOpts::new(p.ca.cert_pem());
    let mut h1 = H1::new(connect(server.addr, &opts).await.unwrap())
        .await
        .unwrap();
    assert_eq!(h1.get("/whoami").await.unwrap().0, StatusCode::OK);
    let start = std::time::Instant::now();
    bounded(&mut h1.conn).await.unwrap().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // HTTP/2: the server sends GOAWAY and the connection ends.
    let mut opts = ClientOpts::new(p.ca.cert_pem());
    opts.alpn = vec![b"h2".to_vec()];
    let stream = connect(server.addr, &opts).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get("https://localhost/whoami")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = bounded(sender.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(resp);
    let start = std::time::Instant::now();
    let _ = bounded(conn).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // A connection that never sends a byte goes too.
    let mut silent = connect(server.addr, &ClientOpts::new(p.ca.cert_pem()))
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = bounded(silent.read_to_end(&mut buf)).await;
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_wait() {
    let p = pki();
    let server = TestServer::start_with(
        tls_with_client_ca(&p),
        ServeOptions::default().max_connections(1),
    )
    .await;
    let opts = ClientOpts::new(p.ca.cert_pem());
    let mut first = H1::new(connect(server.addr, &opts).await.unwrap())
        .await
        .unwrap();
    assert_eq!(first.get("/whoami").await.unwrap().0, StatusCode::OK);
    // The second TCP connection is not taken while the first is open: no TLS handshake.
    let second =
        tokio::time::timeout(Duration::from_millis(500), connect(server.addr, &opts)).await;
    assert!(second.is_err(), "a second connection was served");
    drop(first);
    let (status, _) = get_once(server.addr, &opts, "/whoami").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn head_over_http2_gets_headers_only() {
    let p = pki();
    let server = TestServer::start(tls_with_client_ca(&p)).await;
    let mut opts = ClientOpts::new(p.ca.cert_pem());
    opts.alpn = vec![b"h2".to_vec()];
    let stream = connect(server.addr, &opts).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::head("https://localhost/whoami")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = bounded(sender.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let len: usize = resp.headers()[http::header::CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(len > 0);
    use http_body_util::BodyExt as _;
    let body = bounded(resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert!(body.is_empty());
    // The connection is still good.
    let (status, _) = get_h2(server.addr, p.ca.cert_pem(), "/whoami").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}
