//! Idle connections against a real gateway started in-process: every connection is a login that
//! must succeed, all are held open for the whole hold, and the server's memory is read around it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use spinegate_loadtest::expect::Profile;
use spinegate_loadtest::mix::Protocol;
use spinegate_loadtest::{IdleOptions, idle};

mod common;

fn options(world: &common::World, protocol: Protocol) -> IdleOptions {
    IdleOptions {
        target: world.target,
        server_name: "localhost".into(),
        server_ca: world.population.path("pki/tls-root.pem"),
        connections: NonZeroU32::new(40).unwrap(),
        rate: 200.0,
        in_flight: NonZeroU32::new(8).unwrap(),
        hold: Duration::from_millis(500),
        protocol,
        profile: Profile::Spinegate,
        // The gateway runs in this process.
        server_pids: vec![std::process::id()],
        timeout: Duration::from_secs(10),
        seed: 3,
        progress: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_opened_held_and_measured() {
    let world = common::World::start().await;
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let report = idle(Arc::clone(&world.population), options(&world, protocol)).await.unwrap();
        let text = report.text();
        eprintln!("{text}");
        assert!(report.passed, "{text}");
        assert_eq!((report.opened, report.still_open), (40, 40), "{text}");
        assert!(report.failures.is_empty(), "{text}");
        assert_eq!(report.handshake_and_request.count, 40);
        assert!(report.held_seconds >= 0.5);
        let server = report.server.as_ref().expect("the server's pid was given");
        assert!(server.before.vm_rss_kib > 0 && server.open.vm_rss_kib > 0);
        assert!(server.rss_per_connection_kib.is_some());
        // What `bench/compare-peers` reads from the JSON `idle --json` writes.
        let path = world.dir.path().join("idle.json");
        std::fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(json["server"]["rss_per_connection_kib"].is_number());
        assert!(json["handshake_and_request"]["p99_ms"].as_f64().unwrap() > 0.0);
    }

    let mut far = options(&world, Protocol::Http1);
    far.target = "192.0.2.1:443".parse().unwrap();
    let refused = idle(Arc::clone(&world.population), far).await.unwrap_err();
    assert!(refused.to_string().contains("loopback"), "{refused}");
    assert!(idle(Arc::clone(&world.population), options(&world, Protocol::Http3)).await.is_err(), "h3 is not TCP");
    world.stop().await;
}
