//! No state a client connection can sit in is unbounded: the attacks a fault-injection run used
//! against a release build, each sent over real TLS on loopback — silent HTTP/2 connections that
//! filled `max_connections` and locked every login out, one of them holding SIGTERM; request
//! bodies that stall or trickle; a client that stops reading its response; a back-channel logout
//! body read before any authentication; the admin listener flooded with idle connections. Each
//! close is counted by reason.

mod support;

use std::time::{Duration, Instant};

use http::Request;
use http_body_util::Full;
use support::{Client, Gw, Pki, client_config, tls_connect, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a read waits to see whether the server closed the connection.
async fn closed_within(secs: u64, stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue, // a GOAWAY or session ticket: keep reading
        }
    }
}

fn closes(reason: &str) -> String {
    format!("spinegate_connections_closed_total{{listener=\"test\",transport=\"tcp\",reason=\"{reason}\"}}")
}

#[tokio::test]
async fn silent_http2_connections_cannot_lock_out_logins() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.limits = "max_connections = 20\nheader_read_timeout = \"1s\"\n".into()).await;
    let alice = pki.card("555000000001");
    let before = gw.metric(&closes("first_request_timeout")).await;

    // Fill every slot with anonymous-looking connections that finish TLS choosing HTTP/2 and
    // then send nothing — not even the connection preface.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tls_connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap());
    }
    // A real login made now waits only until the header read timeout frees the slots.
    let started = Instant::now();
    let login = async {
        let mut client = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
        client.get("/metadata").await.unwrap()
    };
    let r = within(10, login).await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "the login waited {:?}", started.elapsed());
    for (i, conn) in silent.iter_mut().enumerate() {
        assert!(closed_within(5, conn).await, "silent connection {i} is still open");
    }
    assert!(gw.metric(&closes("first_request_timeout")).await >= before + 20.0);
}

#[tokio::test]
async fn a_silent_connection_does_not_hold_shutdown() {
    let pki = Pki::new();
    // The default header read timeout (30 s): the drain itself must not wait for it.
    let gw = Gw::start(&pki, |_| {}).await;
    let alice = pki.card("555000000001");
    let _silent = tls_connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
    let mut used = Client::connect(gw.addr, client_config(&pki, Some(&alice), &[b"h2"])).await.unwrap();
    assert_eq!(used.get("/metadata").await.unwrap().status, 200);
    let started = Instant::now();
    within(10, gw.gateway.shutdown(Duration::from_secs(30))).await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
}

/// `POST /_demo/echo` declaring `length` bytes, of which `sent` are sent now.
fn echo_head(length: usize) -> String {
    format!("POST /_demo/echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: {length}\r\n\r\n")
}

async fn response_of(stream: &mut (impl AsyncReadExt + Unpin), secs: u64) -> String {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(secs), stream.read_to_end(&mut bytes)).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_and_the_connection_closes() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.limits = "body_read_timeout = \"1s\"\n".into()).await;
    let alice = pki.card("555000000001");
    let mut tls = tls_connect(gw.addr, client_config(&pki, Some(&alice), &[b"http/1.1"])).await.unwrap();
    tls.write_all(echo_head(1000).as_bytes()).await.unwrap();
    tls.write_all(&[b'x'; 10]).await.unwrap();
    let started = Instant::now();
    let text = response_of(&mut tls, 10).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"reason\":\"request_timeout\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_trickled_request_body_is_cut_off_by_the_minimum_rate() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.limits = "body_read_timeout = \"2s\"\nmin_body_rate = 100\n".into()).await;
    let alice = pki.card("555000000001");
    let mut tls = tls_connect(gw.addr, client_config(&pki, Some(&alice), &[b"http/1.1"])).await.unwrap();
    tls.write_all(echo_head(10_000).as_bytes()).await.unwrap();
    // One byte every 500 ms never leaves a 2 s gap, but is 2 bytes a second.
    let (mut reader, mut writer) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            if writer.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let started = Instant::now();
    let text = response_of(&mut reader, 15).await;
    trickle.abort();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.limits = "send_timeout = \"1s\"\n".into()).await;
    let alice = pki.card("555000000001");
    let before = gw.metric(&closes("send_timeout")).await;
    let mut tls = tls_connect(gw.addr, client_config(&pki, Some(&alice), &[b"http/1.1"])).await.unwrap();
    // 64 MiB, never read: the socket buffers fill and the gateway's writes stop making progress.
    tls.write_all(b"GET /_demo/bytes?n=67108864 HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.metric(&closes("send_timeout")).await < before + 1.0 {
        assert!(Instant::now() < deadline, "the stalled connection was not closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(tls);
}

#[tokio::test]
async fn back_channel_logout_body_is_capped_and_timed_before_it_is_read() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| {
        s.client_certificate = "request";
        s.limits = "body_read_timeout = \"1s\"\n".into();
    })
    .await;
    let post = |body: Vec<u8>| {
        let config = client_config(&pki, None, &[b"http/1.1"]);
        let addr = gw.addr;
        async move {
            let mut client = Client::connect(addr, config).await.unwrap();
            let request = Request::post("/.spinegate/backchannel-logout")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(bytes::Bytes::from(body)))
                .unwrap();
            within(10, client.send(request)).await.unwrap()
        }
    };
    // Far more than any logout token: refused without parsing.
    let huge = [b"logout_token=".to_vec(), vec![b'a'; 1 << 20]].concat();
    assert_eq!(post(huge).await.status, 400);
    // A body that stops half way: refused after the read timeout, not held.
    let mut tls = tls_connect(gw.addr, client_config(&pki, None, &[b"http/1.1"])).await.unwrap();
    tls.write_all(
        b"POST /.spinegate/backchannel-logout HTTP/1.1\r\nhost: localhost\r\ncontent-length: 500\r\n\r\nlogout_token=",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let n = within(10, tls.read(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn idle_admin_connections_cannot_lock_out_probes() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |s| s.admin_extra = "max_connections = 2\nheader_read_timeout = \"1s\"\n".into()).await;
    let before = gw.metric("spinegate_admin_connections_refused_total").await;
    let mut idle = [TcpStream::connect(gw.admin).await.unwrap(), TcpStream::connect(gw.admin).await.unwrap()];
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Over the cap: closed at once, not queued behind the idle ones.
    let mut third = TcpStream::connect(gw.admin).await.unwrap();
    assert!(closed_within(2, &mut third).await, "a connection over the cap was kept");
    // The idle ones are closed by the header timeout, and probes work again.
    for conn in &mut idle {
        assert!(closed_within(5, conn).await, "an idle admin connection was kept");
    }
    let (status, _) = support::plain_get(gw.admin, "/readyz").await;
    assert_eq!(status, 200);
    assert!(gw.metric("spinegate_admin_connections_refused_total").await >= before + 1.0);
}
