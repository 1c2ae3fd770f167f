//! A real gateway started in-process, the way `spinegate dev` starts one (generated
//! configuration through the same loader, real listeners on loopback), in front of a small
//! population's own services: its OCSP responder, token key set and demo upstream.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use spinegate_devpki::KeyKind;
use spinegate_devpki::population::{
    Fractions, GatewaySettings, Population, PopulationSpec, Services, full_config, open_or_generate,
};
use spinegate_loadtest::serve;

/// A gateway serving a population, and what it runs on.
pub(crate) struct World {
    /// The population (in `dir`).
    pub(crate) population: Arc<Population>,
    /// The gateway's client-facing listener.
    pub(crate) target: SocketAddr,
    gateway: spinegate::Gateway,
    services: serve::Running,
    /// Holds the population, configuration and audit log until the world is dropped.
    pub(crate) dir: tempfile::TempDir,
}

impl World {
    /// 200 users with a few of every expected-failure kind (ECDSA keys keep minting quick).
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut spec = PopulationSpec {
            users: NonZeroU32::new(200).unwrap(),
            seed: 11,
            key_kind: KeyKind::EcdsaP256,
            key_pool: NonZeroU32::new(4).unwrap(),
            fractions: Fractions { token: 0.2, revoked: 0.06, expired: 0.06, expiring: 0.06, no_role: 0.06 },
            organisations: NonZeroU32::new(8).unwrap(),
            services: Services { ocsp: any_port, jwks: any_port, upstream: any_port },
        };
        let (population, _) = open_or_generate(dir.path(), &spec, false, &|_, _| {}).unwrap();
        let services = serve::start(Arc::new(population), spec.services).await.unwrap();
        // Reopen with the ports the services got: the configuration names them.
        spec.services = services.addrs;
        let (population, reused) = open_or_generate(dir.path(), &spec, false, &|_, _| {}).unwrap();
        assert!(reused);

        let settings = GatewaySettings {
            listen: any_port,
            admin: any_port,
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
        Self { population: Arc::new(population), target, gateway, services, dir }
    }

    /// Stops the gateway and the services.
    pub(crate) async fn stop(self) {
        self.gateway.shutdown(Duration::from_secs(2)).await;
        self.services.shutdown().await;
    }
}
