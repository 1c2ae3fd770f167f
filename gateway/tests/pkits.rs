//! NIST PKITS §4.4 (basic CRL processing), §4.14 (distribution points and issuing distribution
//! points) and §4.15 (delta CRLs) against exactly what the gateway does with a client's chain:
//! path validation to the PKITS trust anchor and the revocation subjects of the path
//! ([`TrustStore::revocation_subjects`], `revocation_depth = "chain"`), then the per-request
//! revocation answer ([`spinegate::peer::revocation_answer`]) from a CRL-only, fail-closed
//! [`Revocation`] holding every CRL of the path's CAs and the anchor. A case is accepted only when
//! the path validates and the answer is `Good`; `Revoked` and `Unknown` (no current, usable CRL
//! covers the certificate) are refusals. Every case must reach the verdict its file name gives
//! (`Valid…`/`Invalid…`, PKITS default settings) or be listed in `pkits-exceptions.toml` with the
//! reason. Refusing a valid case for a feature the gateway deliberately lacks (indirect and
//! reason-partitioned CRLs, CRL issuers other than the CA, a CA as end entity) is acceptable;
//! accepting an invalid case never is: it fails the test even when listed.
//!
//! Cases come from certval's manifest (`pkits/certval-manifest.json`) and, for the tests of these
//! sections certval leaves out, from [`SUPPLEMENT`]; together they must cover every test of the
//! three sections. Nothing is fetched: PKITS distribution points are directory names, and CRLs are
//! installed directly, so distribution points matter only where a CRL's IDP scopes it. The corpus
//! is read from `$SPINEGATE_TESTDATA/pkits`, else from `../shared/testdata` beside the workspace;
//! without it the test says so and checks nothing.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use spinegate::trust::{TrustMaterial, TrustStore};
use spinegate_config::{ClientAuth, EkuPolicy, IdentityRule, RevocationDepth, RevocationPolicy, UserIdSource};
use spinegate_devpki::corpus::{self, Exceptions, Tally};
use spinegate_revocation::checker::NoObserver;
use spinegate_revocation::fetch::{Fetch, FetchError, FetchRequest};
use spinegate_revocation::issuer::IssuingCa;
use spinegate_revocation::{Options, Policies, Policy, Revocation, Source, Status, UnknownStatus};
use webpki::KeyUsage;

/// 2020-01-01T00:00:00Z: inside every PKITS certificate's validity (2010–2030) and every current
/// CRL's (thisUpdate 2010 or 2011, nextUpdate 2030); the deliberately old CRLs are stale.
const VALIDATION_TIME: u64 = 1_577_836_800;

/// The sections run, with how many tests PKITS defines in each; all of them must be run.
const SECTIONS: &[(&str, u32)] = &[("4.4", 21), ("4.14", 35), ("4.15", 10)];

/// Tests of these sections that certval's manifest omits: (section, end entity, CAs from the
/// anchor down), as PKITS lists them.
const SUPPLEMENT: &[(&str, &str, &[&str])] = &[
    ("4.4", "ValidNegativeSerialNumberTest14EE.crt", &["NegativeSerialNumberCA"]),
    ("4.4", "InvalidNegativeSerialNumberTest15EE.crt", &["NegativeSerialNumberCA"]),
    ("4.14", "ValiddistributionPointTest4EE.crt", &["distributionPoint1CA"]),
    ("4.14", "ValiddistributionPointTest5EE.crt", &["distributionPoint2CA"]),
    ("4.14", "ValiddistributionPointTest7EE.crt", &["distributionPoint2CA"]),
    ("4.14", "InvalidonlyContainsUserCertsTest11EE.crt", &["onlyContainsUserCertsCA"]),
    ("4.14", "InvalidonlyContainsCACertsTest12EE.crt", &["onlyContainsCACertsCA"]),
    ("4.14", "ValidonlyContainsCACertsTest13EE.crt", &["onlyContainsCACertsCA"]),
    ("4.14", "InvalidonlyContainsAttributeCertsTest14EE.crt", &["onlyContainsAttributeCertsCA"]),
    ("4.14", "InvalidonlySomeReasonsTest15EE.crt", &["onlySomeReasonsCA1"]),
    ("4.14", "InvalidonlySomeReasonsTest16EE.crt", &["onlySomeReasonsCA1"]),
    ("4.14", "InvalidonlySomeReasonsTest17EE.crt", &["onlySomeReasonsCA2"]),
    ("4.14", "ValidonlySomeReasonsTest18EE.crt", &["onlySomeReasonsCA3"]),
    ("4.14", "ValidonlySomeReasonsTest19EE.crt", &["onlySomeReasonsCA4"]),
    ("4.14", "InvalidonlySomeReasonsTest20EE.crt", &["onlySomeReasonsCA4"]),
    ("4.14", "InvalidonlySomeReasonsTest21EE.crt", &["onlySomeReasonsCA4"]),
    ("4.14", "ValidIDPwithindirectCRLTest22EE.crt", &["indirectCRLCA1"]),
    ("4.14", "InvalidIDPwithindirectCRLTest23EE.crt", &["indirectCRLCA1"]),
    ("4.14", "ValidIDPwithindirectCRLTest24EE.crt", &["indirectCRLCA2"]),
    ("4.14", "ValidIDPwithindirectCRLTest25EE.crt", &["indirectCRLCA2"]),
    ("4.14", "InvalidIDPwithindirectCRLTest26EE.crt", &["indirectCRLCA2"]),
    ("4.14", "InvalidcRLIssuerTest27EE.crt", &["indirectCRLCA2"]),
    ("4.14", "ValidcRLIssuerTest28EE.crt", &["indirectCRLCA3"]),
    ("4.14", "ValidcRLIssuerTest29EE.crt", &["indirectCRLCA3"]),
    ("4.14", "ValidcRLIssuerTest30EE.crt", &["indirectCRLCA4"]),
    ("4.14", "InvalidcRLIssuerTest31EE.crt", &["indirectCRLCA6"]),
    ("4.14", "InvalidcRLIssuerTest32EE.crt", &["indirectCRLCA6"]),
    ("4.14", "ValidcRLIssuerTest33EE.crt", &["indirectCRLCA6"]),
    ("4.14", "InvalidcRLIssuerTest34EE.crt", &["indirectCRLCA5"]),
    ("4.14", "InvalidcRLIssuerTest35EE.crt", &["indirectCRLCA5"]),
    ("4.15", "InvaliddeltaCRLIndicatorNoBaseTest1EE.crt", &["deltaCRLIndicatorNoBaseCA"]),
    ("4.15", "ValiddeltaCRLTest2EE.crt", &["deltaCRLCA1"]),
    ("4.15", "InvaliddeltaCRLTest3EE.crt", &["deltaCRLCA1"]),
    ("4.15", "InvaliddeltaCRLTest4EE.crt", &["deltaCRLCA1"]),
    ("4.15", "ValiddeltaCRLTest5EE.crt", &["deltaCRLCA1"]),
    ("4.15", "InvaliddeltaCRLTest6EE.crt", &["deltaCRLCA1"]),
    ("4.15", "ValiddeltaCRLTest7EE.crt", &["deltaCRLCA1"]),
    ("4.15", "ValiddeltaCRLTest8EE.crt", &["deltaCRLCA2"]),
    ("4.15", "InvaliddeltaCRLTest9EE.crt", &["deltaCRLCA2"]),
    ("4.15", "InvaliddeltaCRLTest10EE.crt", &["deltaCRLCA3"]),
];

const ROOT_CERT: &str = "TrustAnchorRootCertificate.crt";
const ROOT_CRL: &str = "TrustAnchorRootCRL.crl";
const DEFAULT_SETTINGS: &str = "G_DEFAULT_SETTINGS";
/// id-kp-clientAuth; PKITS end entities carry no EKU, so "if present" never refuses one.
const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// One entry of certval's manifest (the fields this test reads).
#[derive(Deserialize)]
struct ManifestEntry {
    section: String,
    target: String,
    intermediate_cas: Vec<String>,
    settings: String,
}

/// One PKITS test: `id` is its PKITS number (`4.14.3`), `valid` its file-name verdict.
struct Case {
    id: String,
    target: String,
    cas: Vec<String>,
    valid: bool,
}

/// A CRL file of the corpus with its issuer Name (DER), when it parses.
struct CrlFile {
    name: String,
    der: Vec<u8>,
    issuer: Option<Vec<u8>>,
}

/// A CA certificate of a case, found under its manifest name.
struct CaCert {
    /// The file stem without `Cert`, which CRL file names start with.
    name: String,
    der: CertificateDer<'static>,
    subject: Vec<u8>,
}

/// Why a manifest entry is not run; `label` is what the summary counts.
#[derive(Clone, Copy)]
enum Skip {
    DuplicateEntry,
    NonDefaultSettings,
}

/// What the gateway did with a case, and the CRLs it was given.
struct Outcome {
    got: Got,
    crls: Vec<String>,
}

enum Got {
    Accepted,
    Refused(String),
}

/// The fetcher of a gateway with no network: every CRL comes from installed bytes.
#[derive(Debug)]
struct NoNetwork;

/// The run's outcomes, and the ids of invalid cases accepted under an exception: excepted, the
/// run passes, but each is still a bug and is named after the summary.
#[derive(Default)]
struct Run {
    tally: Tally,
    fail_open: Vec<String>,
}

impl Skip {
    fn label(self) -> &'static str {
        match self {
            Skip::DuplicateEntry => "certval duplicate entry",
            Skip::NonDefaultSettings => "non-default path settings",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.got {
            Got::Accepted => f.write_str("accepted")?,
            Got::Refused(why) => write!(f, "refused ({why})")?,
        }
        write!(f, " [CRLs: {}]", self.crls.join(", "))
    }
}

impl Fetch for NoNetwork {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Bytes, FetchError>> {
        Box::pin(async move { Err(FetchError::Connect(format!("no network in the PKITS run: {}", request.url))) })
    }
}

#[tokio::test]
async fn pkits_basic_crl_distribution_point_and_delta_crl_cases_match_verdicts() {
    let dir = corpus::dir("pkits");
    let Ok(json) = std::fs::read_to_string(dir.join("certval-manifest.json")) else {
        corpus::announce_missing(&dir, "PKITS case");
        return;
    };
    let manifest: Vec<ManifestEntry> = serde_json::from_str(&json).expect("certval-manifest.json is a list of entries");
    let mut run = Run::default();
    let cases = cases(&manifest, &mut run.tally);
    let exceptions = Exceptions::parse("pkits-exceptions.toml", include_str!("pkits-exceptions.toml"));
    let crls = crl_files(&dir.join("crls"));
    let root = read(&dir.join("certs").join(ROOT_CERT));
    let sig_algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.all;
    let material = TrustMaterial { anchors: vec![root.clone()], intermediates: Vec::new(), issuers: Vec::new() };
    let store = TrustStore::build(&client_auth(), material, sig_algs).expect("the PKITS trust anchor is usable");

    let mut seen = BTreeSet::new();
    for case in &cases {
        seen.insert(case.id.as_str());
        let outcome = evaluate(&dir, case, &store, &root, &crls).await;
        run.record(case, &outcome, exceptions.contains(&case.id));
    }
    run.tally.stale_unless_seen(&exceptions, &seen, "not a case of §4.4, §4.14 or §4.15");
    run.report();
    run.tally.assert_clean("PKITS failures");
}

/// The cases of the three sections: the manifest's, then [`SUPPLEMENT`]; each PKITS test once,
/// and every test of each section present.
fn cases(manifest: &[ManifestEntry], tally: &mut Tally) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut targets = BTreeSet::new();
    for entry in manifest {
        // certval numbers its altered variants as subsections ("4.4.7" for 4.4.7-2).
        let section = entry.section.split('.').take(2).collect::<Vec<_>>().join(".");
        if !SECTIONS.iter().any(|(s, _)| *s == section) {
            continue;
        }
        let skip = if !targets.insert(entry.target.clone()) {
            // The canonical verdict is the file name's, so a second entry adds nothing.
            Some(Skip::DuplicateEntry)
        } else if entry.settings != DEFAULT_SETTINGS {
            Some(Skip::NonDefaultSettings)
        } else {
            None
        };
        match skip {
            Some(skip) => tally.count_skipped(skip.label(), 1),
            None => cases.push(Case::new(&section, &entry.target, &entry.intermediate_cas)),
        }
    }
    for (section, target, cas) in SUPPLEMENT {
        assert!(targets.insert((*target).to_owned()), "{target} is in the manifest now: drop it from SUPPLEMENT");
        let cas: Vec<String> = cas.iter().map(|ca| (*ca).to_owned()).collect();
        cases.push(Case::new(section, target, &cas));
    }
    for (section, count) in SECTIONS {
        for n in 1..=*count {
            let id = format!("{section}.{n}");
            assert!(cases.iter().any(|c| c.id == id), "PKITS {id} is neither in the manifest nor in SUPPLEMENT");
        }
    }
    cases.sort_by_key(|c| c.id.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>());
    cases
}

impl Case {
    fn new(section: &str, target: &str, cas: &[String]) -> Self {
        // PKITS names each end entity `<Valid|Invalid><Name>Test<n>EE.crt`.
        let number = target
            .strip_suffix("EE.crt")
            .and_then(|stem| stem.rsplit_once("Test"))
            .map(|(_, n)| n)
            .filter(|n| n.parse::<u32>().is_ok())
            .unwrap_or_else(|| panic!("{target} is not a PKITS end-entity file name"));
        let valid = if target.starts_with("Valid") {
            true
        } else if target.starts_with("Invalid") {
            false
        } else {
            panic!("{target} names no verdict");
        };
        Self { id: format!("{section}.{number}"), target: target.to_owned(), cas: cas.to_vec(), valid }
    }
}

impl Run {
    /// Counts one case against its file-name verdict. An accepted invalid case fails whether or not
    /// it is listed: an exception can excuse refusing, never admitting.
    fn record(&mut self, case: &Case, outcome: &Outcome, excepted: bool) {
        let accepted = matches!(outcome.got, Got::Accepted);
        let expected = if case.valid { "valid" } else { "invalid" };
        let line = format!("{} {}: expected {expected}, got {outcome}", case.id, case.target);
        let tally = &mut self.tally;
        match (accepted == case.valid, excepted) {
            (true, false) => tally.pass += 1,
            (true, true) => tally.stale.push(format!("{}: listed, but now {expected} as PKITS says", case.id)),
            (false, true) if accepted => {
                self.fail_open.push(case.id.clone());
                tally.fail(format_args!("FAIL-OPEN (listed, but never excusable) {line}"));
            }
            (false, true) => tally.divergent.push(line),
            (false, false) if accepted => tally.fail(format_args!("FAIL-OPEN {line}")),
            (false, false) => tally.fail(line),
        }
    }

    fn report(&self) {
        self.tally.print_findings();
        println!("{}", self.tally.summary("PKITS"));
        if !self.fail_open.is_empty() {
            println!(
                "PKITS FAIL-OPEN: {} invalid case(s) accepted despite being listed as exceptions: {}",
                self.fail_open.len(),
                self.fail_open.join(", ")
            );
        }
    }
}

/// Runs one case as the gateway would see it: the client presents the end entity and the case's
/// CAs; the gateway holds the anchor and every CRL of the anchor and those CAs.
async fn evaluate(
    dir: &Path,
    case: &Case,
    store: &TrustStore,
    root: &CertificateDer<'static>,
    crls: &[CrlFile],
) -> Outcome {
    let time = UnixTime::since_unix_epoch(Duration::from_secs(VALIDATION_TIME));
    let ee = read(&dir.join("certs").join(&case.target));
    let cas: Vec<CaCert> = case.cas.iter().map(|name| ca_cert(dir, name)).collect();
    let presented: Vec<CertificateDer<'static>> = cas.iter().map(|ca| ca.der.clone()).collect();

    let revocation = revocation(time);
    let mut installed = Vec::new();
    let root_issuer = Arc::new(IssuingCa::from_cert_der(root).expect("the PKITS anchor describes an issuer"));
    let root_crls = crls.iter().filter(|crl| crl.name == ROOT_CRL);
    install(&revocation, &root_issuer, root_crls, &mut installed).await;
    for ca in &cas {
        let issuer = Arc::new(IssuingCa::from_cert_der(&ca.der).expect("a PKITS CA certificate describes an issuer"));
        install(&revocation, &issuer, crls.iter().filter(|crl| crl.belongs_to(ca)), &mut installed).await;
    }

    let usage = KeyUsage::required_if_present(CLIENT_AUTH);
    let got = match store.revocation_subjects(&ee, &presented, time, usage) {
        Err(failure) => Got::Refused(format!("path {}: {failure}", failure.label())),
        Ok((leaf, ca_subjects)) => {
            let answer = spinegate::peer::revocation_answer(&revocation, &leaf, "", &ca_subjects, time).await;
            match answer.status {
                // What Peer::check lets through; NotChecked cannot arise under a CRL-only policy.
                Status::Good | Status::NotChecked => Got::Accepted,
                status => Got::Refused(format!("revocation {status:?}")),
            }
        }
    };
    Outcome { got, crls: installed }
}

/// A CRL-only, fail-closed revocation state whose clock stands at `time`.
fn revocation(time: UnixTime) -> Arc<Revocation> {
    let policy = Policy { sources: vec![Source::Crl], unknown: UnknownStatus::Refuse, ..Policy::default() };
    let policies = Policies { default: Arc::new(policy), issuers: HashMap::new() };
    Revocation::new(Options::default(), policies, Arc::new(NoNetwork), Arc::new(NoObserver), Arc::new(move || time))
}

/// Installs `files` as CRLs of `issuer`, noting each outcome: a refused CRL is data for the case.
async fn install(
    revocation: &Arc<Revocation>,
    issuer: &Arc<IssuingCa>,
    files: impl Iterator<Item = &CrlFile>,
    installed: &mut Vec<String>,
) {
    for crl in files {
        let result = revocation.install_crl_bytes(&crl.name, issuer, Bytes::from(crl.der.clone())).await;
        installed.push(format!("{} {}", crl.name, result.err().unwrap_or("ok")));
    }
}

impl CrlFile {
    /// A CA's CRLs: those its operator would be given, by file name (`<CA>CRL.crl`,
    /// `<CA>deltaCRL.crl`, `<CA>GoodCRL.crl` …, including ones that name another issuer) or by
    /// the issuer name the CRL carries (a CRL signed by a separate key of the same CA).
    fn belongs_to(&self, ca: &CaCert) -> bool {
        self.name.starts_with(&ca.name) || self.issuer.as_deref() == Some(ca.subject.as_slice())
    }
}

fn ca_cert(dir: &Path, name: &str) -> CaCert {
    let certs = dir.join("certs");
    // certval's manifest drops the `CA` of one name (BadCRLIssuerName for BadCRLIssuerNameCA).
    let name = [name.to_owned(), format!("{name}CA")]
        .into_iter()
        .find(|n| certs.join(format!("{n}Cert.crt")).is_file())
        .unwrap_or_else(|| panic!("no certificate for CA {name} in {}", certs.display()));
    let der = read(&certs.join(format!("{name}Cert.crt")));
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap_or_else(|e| panic!("{name}Cert.crt: {e}"));
    let subject = cert.subject().as_raw().to_vec();
    CaCert { name, der, subject }
}

fn crl_files(dir: &Path) -> Vec<CrlFile> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<CrlFile> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "crl"))
        .map(|path| {
            let der = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let issuer = x509_parser::parse_x509_crl(&der).ok().map(|(_, crl)| crl.issuer().as_raw().to_vec());
            let name = path.file_name().and_then(|n| n.to_str()).expect("CRL file names are UTF-8").to_owned();
            CrlFile { name, der, issuer }
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

fn read(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from(std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn client_auth() -> ClientAuth {
    ClientAuth {
        trust_anchors: Vec::new(),
        intermediates: Vec::new(),
        // Two CAs below the anchor at most (§4.4.2); the cap is never what refuses a case.
        max_chain_length: NonZeroUsize::new(8).expect("8 is not zero"),
        max_chain_bytes: NonZeroUsize::new(64 * 1024).expect("64 KiB is not zero"),
        client_auth_eku: EkuPolicy::RequireIfPresent,
        revocation_depth: RevocationDepth::Chain,
        expiry_warning: Duration::from_secs(90 * 24 * 60 * 60),
        // Identity extraction is not part of this run; revocation_subjects never reads it.
        identity: IdentityRule {
            user_id: UserIdSource::SubjectCnPrefix { separator: '_' },
            require_ou: None,
            require_o: None,
        },
        revocation: RevocationPolicy::default(),
        issuers: Vec::new(),
    }
}
