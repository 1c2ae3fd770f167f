//! A five-second scenario against a real gateway started in-process, the way `spinegate dev`
//! starts one (generated configuration through the same loader, real listeners on loopback), in
//! front of the population's own services: its OCSP responder, token key set and demo upstream.
//! Correctness only: every answer must be what its user must get, and the counts must add up.

use std::sync::Arc;
use std::time::Duration;

use spinegate_loadtest::expect::Profile;
use spinegate_loadtest::mix::{Mix, Protocol, UserFilter};
use spinegate_loadtest::schedule::{Arrivals, Schedule, Shape};
use spinegate_loadtest::session::SessionShape;
use spinegate_loadtest::{RunOptions, run};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_second_mixed_scenario_has_no_status_mismatch() {
    let world = common::World::start().await;
    let (population, target) = (Arc::clone(&world.population), world.target);
    let options = RunOptions {
        target,
        server_name: "localhost".into(),
        server_ca: population.path("pki/tls-root.pem"),
        schedule: Schedule::new(Shape::Constant { rate: 40.0 }, Duration::from_secs(5)).unwrap(),
        warmup: Duration::ZERO,
        arrivals: Arrivals::Uniform,
        shape: SessionShape { calls_min: 1, calls_max: 3, think: Duration::from_millis(100), resumed_fraction: 0.5 },
        mix: Mix::Population,
        mix_text: "population".into(),
        protocols: vec![(Protocol::Http1, 1.0), (Protocol::Http2, 1.0), (Protocol::Http3, 1.0)],
        profile: Profile::Spinegate,
        users: UserFilter::All,
        server_pids: vec![std::process::id()],
        max_sessions: 1000,
        timeout: Duration::from_secs(10),
        drain: Duration::from_secs(20),
        seed: 7,
        progress: false,
        label: "in-process scenario".into(),
    };
    let report = run(Arc::clone(&population), options).await.unwrap();
    let markdown = report.markdown();
    eprintln!("{markdown}");

    assert_eq!(report.mismatches.total, 0, "{markdown}");
    assert!(report.passed, "{markdown}");
    // Counts add up: every scheduled session ran to its end, and every class tallies its own.
    assert_eq!(report.sessions.dispatched, 200, "uniform arrivals: 40/s for 5 s");
    assert_eq!(report.sessions.started, 200);
    assert_eq!(report.sessions.finished, 200);
    assert_eq!((report.sessions.dropped, report.sessions.unfinished), (0, 0));
    let class_sessions: u64 = report.classes.values().map(|c| c.sessions).sum();
    assert_eq!(class_sessions, 200, "{markdown}");
    for (class, tally) in &report.classes {
        let outcomes: u64 = tally.outcomes.values().sum();
        assert_eq!(outcomes, tally.judged, "{class}");
        assert!(tally.judged >= tally.sessions, "{class}: every session is judged at least once");
    }
    // Every expected-failure kind was exercised, and refused as it must be.
    for kind in ["smartcard/revoked", "smartcard/expired", "smartcard/expiring_soon", "+no_role", "token/"] {
        let sessions: u64 = report.classes.iter().filter(|(c, _)| c.contains(kind)).map(|(_, t)| t.sessions).sum();
        assert!(sessions > 0, "no {kind} session in {markdown}");
    }
    let counts = &report.measured.counts;
    // The measured window is the schedule; a session arriving on its last instant falls outside.
    assert!((195..=200).contains(&counts.sessions), "{markdown}");
    assert!(counts.full_handshakes > 0 && counts.full_handshakes <= 200, "one login handshake per session");
    assert!(counts.resumed_handshakes > 0, "{markdown}");
    assert_eq!(counts.resumption_missed, 0, "{markdown}");
    assert!(counts.keepalive_requests > 0);
    assert_eq!(report.latency.all_requests.count, counts.requests);
    assert!(report.server.is_some(), "CPU time of this process was read");

    let out = world.dir.path().join("report");
    report.write(&out).unwrap();
    for name in ["report.json", "report.md", "report.svg"] {
        assert!(std::fs::metadata(out.join(name)).unwrap().len() > 0, "{name}");
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["mismatches"]["total"], 0);

    world.stop().await;
}
