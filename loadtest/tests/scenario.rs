//! A five-second scenario against a real gateway started in-process, the way `spinegate dev`
//! starts one (generated configuration through the same loader, real listeners on loopback), in
//! front of the population's own services: its OCSP responder, token key set and demo upstream.
//! Correctness only: every answer must be what its user must get, and the counts must add up.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use spinegate_devpki::KeyKind;
use spinegate_devpki::population::{
    Fractions, GatewaySettings, PopulationSpec, Services, full_config, open_or_generate,
};
use spinegate_loadtest::expect::Profile;
use spinegate_loadtest::mix::{Mix, Protocol, UserFilter};
use spinegate_loadtest::schedule::{Arrivals, Schedule, Shape};
use spinegate_loadtest::session::SessionShape;
use spinegate_loadtest::{RunOptions, run, serve};

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_second_mixed_scenario_has_no_status_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    // A small population with a few of every expected-failure kind; ECDSA keys keep minting quick.
    let mut spec = PopulationSpec {
        users: NonZeroU32::new(200).unwrap(),
        seed: 11,
        key_kind: KeyKind::EcdsaP256,
        key_pool: NonZeroU32::new(4).unwrap(),
        fractions: Fractions { token: 0.2, revoked: 0.06, expired: 0.06, expiring: 0.06, no_role: 0.06 },
        organisations: NonZeroU32::new(8).unwrap(),
        services: Services { ocsp: any_port(), jwks: any_port(), upstream: any_port() },
    };
    let (population, _) = open_or_generate(dir.path(), &spec, false, &|_, _| {}).unwrap();
    let services = serve::start(Arc::new(population), spec.services).await.unwrap();
    // Reopen with the ports the services got: the configuration names them.
    spec.services = services.addrs;
    let (population, reused) = open_or_generate(dir.path(), &spec, false, &|_, _| {}).unwrap();
    assert!(reused);

    let settings = GatewaySettings {
        listen: any_port(),
        admin: any_port(),
        // Outside the configuration's directory, which the gateway watches for changes.
        audit_file: dir.path().join("logs/audit.jsonl"),
        log_level: "warn".into(),
    };
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::create_dir_all(dir.path().join("gateway")).unwrap();
    let config_path = dir.path().join("gateway/spinegate.toml");
    std::fs::write(&config_path, full_config(&population, &settings)).unwrap();
    let config = spinegate_config::load(&config_path).unwrap();
    let gateway = spinegate::Gateway::start(config, spinegate::Options::default()).await.unwrap();
    let target = gateway.listener_addrs()[0];

    let population = Arc::new(population);
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

    let out = dir.path().join("report");
    report.write(&out).unwrap();
    for name in ["report.json", "report.md", "report.svg"] {
        assert!(std::fs::metadata(out.join(name)).unwrap().len() > 0, "{name}");
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["mismatches"]["total"], 0);

    gateway.shutdown(Duration::from_secs(2)).await;
    services.shutdown().await;
}
