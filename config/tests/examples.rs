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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("examples/full.toml")).unwrap();
    let mut sources = Vec::new();
    rust_files(&root.join("src"), &mut sources);
    let (structs, fields) = raw_struct_fields(&sources);
    // The whole file and every section as written: `RawConfig`, `RawAdmin`, … `RawPage`.
    assert!(structs > 25, "found only {structs} Raw structs; did the sections change shape?");
    assert!(fields.len() > 100, "found only {} raw fields; did the sections change shape?", fields.len());
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

/// Every `.rs` file under `dir`, read.
fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The number of `pub struct Raw… {` blocks in `sources`, and the names of their `pub name: Type`
/// fields: the keys the file may hold (the validated structs are not file keys).
fn raw_struct_fields(sources: &[String]) -> (usize, Vec<String>) {
    let (mut structs, mut fields) = (0, Vec::new());
    for source in sources {
        let mut inside = false;
        for line in source.lines() {
            if !inside {
                inside = line.starts_with("pub struct Raw") && line.ends_with('{');
                structs += usize::from(inside);
            } else if line == "}" {
                inside = false;
            } else if let Some((name, _)) = line.trim().strip_prefix("pub ").and_then(|l| l.split_once(':')) {
                fields.push(name.to_owned());
            }
        }
    }
    (structs, fields)
}
