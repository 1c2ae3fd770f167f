//! The revocation checker with an in-memory fetcher: caching, one shared fetch per certificate,
//! source order, unknown-status policy, failure cooling, the deny list, generations, CRLs by URL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rustls_pki_types::UnixTime;
use spinegate_devpki::crl::{CrlSpec, RevokedEntry};
use spinegate_devpki::ocsp::{CertState, respond};
use spinegate_devpki::{Ca, Issued, KeyKind, LeafSpec};
use spinegate_revocation::checker::NoObserver;
use spinegate_revocation::deny::DenyEntry;
use spinegate_revocation::fetch::{Fetch, FetchError, FetchRequest};
use spinegate_revocation::issuer::{IssuingCa, Subject};
use spinegate_revocation::{
    AnswerSource, OcspMethod, OcspSettings, Options, Policies, Policy, Revocation, Source, Status, UnknownStatus,
};

const OCSP_URL: &str = "http://ocsp.test/";
const CRL_URL: &str = "http://crl.test/issuing.crl";

#[derive(Debug)]
struct Fake {
    ca: Arc<Ca>,
    statuses: Mutex<HashMap<Vec<u8>, CertState>>,
    crl: Mutex<Option<Vec<u8>>>,
    failing: Mutex<bool>,
    delay: Mutex<Duration>,
    ocsp_requests: AtomicU64,
    crl_requests: AtomicU64,
}

impl Fetch for Fake {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Bytes, FetchError>> {
        let failing = *self.failing.lock().unwrap();
        let delay = *self.delay.lock().unwrap();
        let result = if request.url.starts_with(OCSP_URL) {
            self.ocsp_requests.fetch_add(1, Ordering::SeqCst);
            let statuses = self.statuses.lock().unwrap().clone();
            let body = request.post.map(|(b, _)| b).unwrap_or_default();
            Ok(Bytes::from(
                respond(
                    &self.ca,
                    None,
                    &body,
                    |s| statuses.get(s).copied(),
                    time::OffsetDateTime::now_utc(),
                    Duration::from_secs(3600),
                )
                .unwrap(),
            ))
        } else if request.url == CRL_URL {
            self.crl_requests.fetch_add(1, Ordering::SeqCst);
            self.crl.lock().unwrap().clone().map(Bytes::from).ok_or(FetchError::Status(404))
        } else {
            Err(FetchError::BadUrl(request.url))
        };
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if failing { Err(FetchError::Connect("refused".into())) } else { result }
        })
    }
}

struct World {
    fake: Arc<Fake>,
    revocation: Arc<Revocation>,
    clock: Arc<AtomicU64>,
    subject: Arc<Subject>,
    leaf: Issued,
    ca: Arc<Ca>,
}

fn serial(issued: &Issued) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(&issued.cert).unwrap();
    let raw = cert.raw_serial();
    let start = raw.iter().position(|b| *b != 0).unwrap_or(0);
    raw[start..].to_vec()
}

fn world(sources: Vec<Source>, unknown: UnknownStatus) -> World {
    world_with(Options { max_age: Duration::from_secs(600), ..Options::default() }, sources, unknown)
}

fn world_with(options: Options, sources: Vec<Source>, unknown: UnknownStatus) -> World {
    let ca = Arc::new(Ca::root("Checker Test CA", KeyKind::EcdsaP256).unwrap());
    let leaf = ca
        .issue(
            &LeafSpec::smartcard("555000000001", "A", "B").key(KeyKind::EcdsaP256).ocsp_url(OCSP_URL).crl_url(CRL_URL),
        )
        .unwrap();
    let issuer = Arc::new(IssuingCa::from_cert_der(ca.cert()).unwrap());
    let subject = Arc::new(Subject::from_cert_der(&leaf.cert, Arc::clone(&issuer)).unwrap());
    assert_eq!(subject.ocsp_urls, vec![OCSP_URL.to_owned()]);
    assert_eq!(subject.crl_urls, vec![CRL_URL.to_owned()]);
    let fake = Arc::new(Fake {
        ca: Arc::clone(&ca),
        statuses: Mutex::new(HashMap::from([(serial(&leaf), CertState::Good)])),
        crl: Mutex::new(None),
        failing: Mutex::new(false),
        delay: Mutex::new(Duration::ZERO),
        ocsp_requests: AtomicU64::new(0),
        crl_requests: AtomicU64::new(0),
    });
    let policy = Policy {
        sources,
        unknown,
        ocsp: OcspSettings { method: OcspMethod::Post, ..OcspSettings::default() },
        ..Policy::default()
    };
    let clock = Arc::new(AtomicU64::new(time::OffsetDateTime::now_utc().unix_timestamp() as u64));
    let c = Arc::clone(&clock);
    let revocation = Revocation::new(
        options,
        Policies { default: Arc::new(policy), issuers: HashMap::new() },
        Arc::clone(&fake) as Arc<dyn Fetch>,
        Arc::new(NoObserver),
        Arc::new(move || UnixTime::since_unix_epoch(Duration::from_secs(c.load(Ordering::SeqCst)))),
    );
    World { fake, revocation, clock, subject, leaf, ca }
}

impl World {
    fn now(&self) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(self.clock.load(Ordering::SeqCst)))
    }

    fn advance(&self, secs: u64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    async fn check(&self) -> spinegate_revocation::Answer {
        self.revocation.check(&self.subject, "555000000001", self.now()).await
    }

    fn set(&self, state: CertState) {
        self.fake.statuses.lock().unwrap().insert(serial(&self.leaf), state);
    }
}

fn revoked_now() -> CertState {
    CertState::Revoked { at: time::OffsetDateTime::now_utc(), reason: Some(1) }
}

#[tokio::test]
async fn good_ocsp_answer_is_cached_until_it_ends() {
    let w = world(vec![Source::Ocsp], UnknownStatus::Refuse);
    let first = w.check().await;
    assert_eq!(first.status, Status::Good);
    assert_eq!(first.source, Some(AnswerSource::Ocsp));
    assert!(first.valid_until >= w.now().as_secs() + 599);
    assert_eq!(w.check().await.status, Status::Good);
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 1, "the second check is a map read");

    // Past max_age the answer is fetched again.
    w.advance(601);
    assert_eq!(w.check().await.status, Status::Good);
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_checks_cause_one_ocsp_request() {
    let w = Arc::new(world(vec![Source::Ocsp], UnknownStatus::Refuse));
    *w.fake.delay.lock().unwrap() = Duration::from_millis(200);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let w = Arc::clone(&w);
            tokio::spawn(async move { w.check().await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Status::Good);
    }
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn revocation_found_on_refresh_advances_the_generation() {
    let w = world(vec![Source::Ocsp], UnknownStatus::Refuse);
    assert_eq!(w.check().await.status, Status::Good);
    let generation = w.revocation.generation();
    w.set(revoked_now());
    w.advance(601);
    assert!(matches!(w.check().await.status, Status::Revoked { .. }));
    assert!(w.revocation.generation() > generation, "connections holding 'good' must look again");
}

#[tokio::test]
async fn unknown_is_refused_by_default() {
    let w = world(vec![Source::Ocsp], UnknownStatus::Refuse);
    *w.fake.failing.lock().unwrap() = true;
    assert!(matches!(w.check().await.status, Status::Unknown(_)));
    // A responder that does not know the certificate is no answer either.
    *w.fake.failing.lock().unwrap() = false;
    w.fake.statuses.lock().unwrap().clear();
    w.advance(60);
    assert!(matches!(w.check().await.status, Status::Unknown(_)));
}

#[tokio::test]
async fn last_good_answer_is_served_for_the_stale_window_only() {
    let w = world(vec![Source::Ocsp], UnknownStatus::ServeStaleFor(Duration::from_secs(3600)));
    assert_eq!(w.check().await.status, Status::Good);
    *w.fake.failing.lock().unwrap() = true;
    w.advance(601 + 1800);
    let stale = w.check().await;
    assert_eq!(stale.status, Status::Good);
    assert!(stale.stale);
    w.advance(1800 + 60);
    assert!(matches!(w.check().await.status, Status::Unknown(_)));
}

#[tokio::test]
async fn failing_responder_is_not_asked_again_while_cooling() {
    let w = world(vec![Source::Ocsp], UnknownStatus::Refuse);
    *w.fake.failing.lock().unwrap() = true;
    for _ in 0..5 {
        assert!(matches!(w.check().await.status, Status::Unknown(_)));
    }
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 1);
    w.advance(11);
    *w.fake.failing.lock().unwrap() = false;
    assert_eq!(w.check().await.status, Status::Good);
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn crl_answers_when_ocsp_fails_and_a_listed_serial_is_revoked() {
    let w = world(vec![Source::Ocsp, Source::Crl], UnknownStatus::Refuse);
    *w.fake.crl.lock().unwrap() = Some(w.ca.crl(&CrlSpec::new(1)).unwrap());
    w.fake.statuses.lock().unwrap().clear(); // OCSP: unknown certificate
    let answer = w.check().await;
    assert_eq!((answer.status, answer.source), (Status::Good, Some(AnswerSource::Crl)));

    let mut listed = CrlSpec::new(2);
    listed.revoked = vec![RevokedEntry::now(&serial(&w.leaf))];
    *w.fake.crl.lock().unwrap() = Some(w.ca.crl(&listed).unwrap());
    w.revocation.install_crl_bytes(CRL_URL, &w.subject.issuer, Bytes::from(w.ca.crl(&listed).unwrap())).await.unwrap();
    let answer = w.check().await;
    assert!(matches!(answer.status, Status::Revoked { .. }));
    assert_eq!(answer.source, Some(AnswerSource::Crl));
}

#[tokio::test]
async fn revocation_from_any_source_wins_over_good_from_the_first() {
    let w = world(vec![Source::Ocsp, Source::Crl], UnknownStatus::Refuse);
    let mut listed = CrlSpec::new(1);
    listed.revoked = vec![RevokedEntry::now(&serial(&w.leaf))];
    w.revocation.install_crl_bytes(CRL_URL, &w.subject.issuer, Bytes::from(w.ca.crl(&listed).unwrap())).await.unwrap();
    assert!(matches!(w.check().await.status, Status::Revoked { .. }));
}

#[tokio::test]
async fn deny_list_refuses_by_user_or_serial_and_can_be_lifted() {
    let w = world(vec![Source::Ocsp], UnknownStatus::Refuse);
    assert_eq!(w.check().await.status, Status::Good);
    let generation = w.revocation.generation();
    let entry = DenyEntry::User("555000000001".into());
    w.revocation.deny_add([entry.clone()]);
    assert!(w.revocation.generation() > generation);
    let answer = w.check().await;
    assert_eq!(answer.source, Some(AnswerSource::DenyList));
    w.revocation.deny_remove(&[entry]);
    assert_eq!(w.check().await.status, Status::Good);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deny.txt");
    std::fs::write(&file, format!("serial {}\n", w.subject.cert.serial)).unwrap();
    w.revocation.set_deny_file(Some(file.clone()));
    assert_eq!(w.check().await.source, Some(AnswerSource::DenyList));
    std::fs::write(&file, "user 12345\n").unwrap(); // invalid: keeps the last good list
    w.revocation.load_files().await;
    assert_eq!(w.check().await.source, Some(AnswerSource::DenyList));
}

#[tokio::test]
async fn no_sources_means_not_checked_but_the_deny_list_still_applies() {
    let w = world(Vec::new(), UnknownStatus::Refuse);
    assert_eq!(w.check().await.status, Status::NotChecked);
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 0);
    w.revocation.deny_add([DenyEntry::User("555000000001".into())]);
    assert!(matches!(w.check().await.status, Status::Revoked { .. }));
}

#[tokio::test]
async fn peek_never_waits_and_starts_the_fetch() {
    let w = world(vec![Source::Ocsp], UnknownStatus::Refuse);
    let first = w.revocation.peek(&w.subject, "555000000001", w.now());
    assert!(matches!(first.status, Status::Unknown(_)));
    // The background fetch lands; the next check is a map read.
    for _ in 0..100 {
        if w.fake.ocsp_requests.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(w.check().await.status, Status::Good);
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn recently_used_answers_are_refreshed_before_they_end() {
    let w = world(vec![Source::Ocsp], UnknownStatus::Refuse);
    assert_eq!(w.check().await.status, Status::Good);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(Arc::clone(&w.revocation).run(stopped));
    // 600 s answer, refreshed 300 s before its end.
    w.advance(301);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 2, "refreshed in the background");
    let _ = stop.send(true);
    runner.await.unwrap();
}

#[tokio::test]
async fn a_later_source_is_a_fallback_not_a_shortcut() {
    let w = world(vec![Source::Ocsp, Source::Crl], UnknownStatus::Refuse);
    // A current CRL that does not list the certificate is already in memory…
    w.revocation
        .install_crl_bytes(CRL_URL, &w.subject.issuer, Bytes::from(w.ca.crl(&CrlSpec::new(1)).unwrap()))
        .await
        .unwrap();
    // …but OCSP comes first in the policy, so OCSP is asked and answers.
    let answer = w.check().await;
    assert_eq!((answer.status, answer.source), (Status::Good, Some(AnswerSource::Ocsp)));
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 1);
    // With OCSP down, the CRL vouches.
    *w.fake.failing.lock().unwrap() = true;
    w.advance(601);
    let answer = w.check().await;
    assert_eq!((answer.status, answer.source), (Status::Good, Some(AnswerSource::Crl)));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_margin_longer_than_the_answer_does_not_mean_refresh_always() {
    // Answers live 60 s; the margin says 1 h. Refresh at half-life, not on every tick.
    let options =
        Options { max_age: Duration::from_secs(60), refresh_before: Duration::from_secs(3600), ..Options::default() };
    let w = world_with(options, vec![Source::Ocsp], UnknownStatus::Refuse);
    assert_eq!(w.check().await.status, Status::Good);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(Arc::clone(&w.revocation).run(stopped));
    w.advance(10);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 1, "not refreshed before half-life");
    w.advance(25);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.fake.ocsp_requests.load(Ordering::SeqCst), 2, "refreshed after half-life");
    let _ = stop.send(true);
    runner.await.unwrap();
}
