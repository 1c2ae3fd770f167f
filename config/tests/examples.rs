//! Every file in `config/examples` must parse: the examples are documentation that cannot rot.

use std::path::Path;

fn examples() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_parses() {
    let files = examples();
    assert!(files.len() >= 2, "expected minimal.toml and full.toml, found {files:?}");
    for file in files {
        if let Err(e) = spinegate_config::load(&file) {
            panic!("{e}");
        }
    }
}

#[test]
fn full_example_sets_every_section_away_from_nothing() {
    let c = spinegate_config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/full.toml")).unwrap();
    assert_eq!(c.listeners[0].certificates.len(), 3);
    assert_eq!(c.listeners[0].http3.as_ref().map(|h| h.max_concurrent_streams), Some(100));
    assert_eq!(c.client_auth.issuers.len(), 2);
    assert_eq!(c.client_auth.issuers[1].identity.user_id, spinegate_config::UserIdSource::SubjectSerialNumber);
    assert!(c.upstreams[1].tls.as_ref().unwrap().client_identity.is_some());
    assert_eq!(c.routes[1].host.as_deref(), Some("spine.example.nhs.uk"));
    assert_eq!(c.routes[0].rules.len(), 2);
    assert!(matches!(c.role_directory, spinegate_config::RoleDirectory::Ldap(_)));
    assert!(c.identity_assertion.is_some() && c.audit.file.is_some());
    assert_eq!(c.authorization.baseline.len(), 1);
    assert_eq!(c.listeners[0].certificate_problems, spinegate_config::CertificateProblems::Explain);
    assert!(c.guidance.template_dir.is_some() && c.guidance.organisation.is_some());
    assert_eq!(c.guidance.service_desk.hours.as_deref(), Some("24 hours a day"));
    assert_eq!(
        c.guidance.pages[&spinegate_vocab::Reason::CertificateExpired].who_can_help.as_deref().map(<[_]>::len),
        Some(1)
    );
}

/// Every key the schema accepts appears in full.toml: the raw structs reject unknown keys, so a
/// key here that the schema lacks fails `every_example_parses`; this test catches the opposite,
/// an option added to the schema but not documented in full.toml.
#[test]
fn full_example_mentions_every_option() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/full.toml")).unwrap();
    let src =
        |name: &str| std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(name)).unwrap();
    // raw.rs, and the as-written half of authz.rs (its validated structs are not file keys).
    let authz = src("authz.rs");
    let authz_raw = authz.split("// Validated").next().unwrap();
    assert!(authz_raw.len() < authz.len(), "authz.rs lost its `// Validated` marker");
    let guidance = src("guidance.rs");
    let guidance_raw = guidance.split("// Validated").next().unwrap();
    assert!(guidance_raw.len() < guidance.len(), "guidance.rs lost its `// Validated` marker");
    let raw = format!("{}\n{authz_raw}\n{guidance_raw}", src("raw.rs"));
    // Fields of the raw structs: `pub name: Type,` lines.
    let fields: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name))
        .filter(|name| name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect();
    assert!(fields.len() > 40, "found only {} fields; did raw.rs change shape?", fields.len());
    for field in fields {
        let as_key = format!("\n{field} =");
        let as_table = format!("[{field}]");
        let as_array = format!("[[{field}]]");
        let nested = format!(".{field}]");
        assert!(
            text.contains(&as_key) || text.contains(&as_table) || text.contains(&as_array) || text.contains(&nested),
            "option `{field}` is not shown in config/examples/full.toml"
        );
    }
}
