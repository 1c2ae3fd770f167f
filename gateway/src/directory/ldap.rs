//! The LDAP backend of the role directory: one subtree search per user under `base_dn`, each
//! entry found one role profile.
//!
//! - **Cache.** Answers are kept per user in a bounded moka cache (`cache_entries`) for
//!   `cache_ttl`; a hit is a map read and an `Arc` clone. Errors are never cached. A cached answer
//!   keeps serving until its TTL even while the directory is down; after that the lookup fails
//!   ([`DirectoryError::Unavailable`], a 503) rather than serve stale roles, so a withdrawn role
//!   stops working within the TTL whatever the directory's state.
//! - **Coalescing.** The first miss for a user starts a *flight* (a spawned task) and later misses
//!   wait for it, so concurrent requests cost one search. The flight runs to its end, bounded by
//!   `timeout`, even if every caller has gone.
//! - **Pool.** Up to `pool_size` connections, each bound once (simple bind, or anonymous) and
//!   reused; the pool size also bounds concurrent searches. A connection that failed is dropped; a
//!   pooled one found dead is replaced once within the same lookup (the server restarted).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ldap3::asn1::StructureTag;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, ResultEntry, Scope, SearchOptions};
use metrics::Counter;
use moka::sync::Cache;
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use spinegate_config::authz::RawLdapAttributes;
use tokio::sync::Semaphore;

use spinegate_authz::{RoleData, RoleSlot};
use spinegate_flight::{Boarding, SingleFlight};

use super::{DirectoryEntry, DirectoryError, DirectorySetupError};
use crate::identity::UserId;
use crate::metrics as m;

/// Most entries one search may return. A person holds a handful of role profiles; a filter that
/// matches far more is a misconfiguration, refused (the server answers sizeLimitExceeded) rather
/// than loaded into memory.
const MAX_ENTRIES: i32 = 1000;

/// Longest answer reuse: moka panics beyond 1000 years, and a year is already past any sensible
/// delay for a role change.
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

type LookupResult = Result<Arc<DirectoryEntry>, DirectoryError>;

/// LDAP role directory: cached, coalesced, pooled (see the module documentation).
pub struct LdapDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    cache: Cache<UserId, Arc<DirectoryEntry>>,
    /// Searches in progress, by user: concurrent lookups of one user share one search.
    flights: Arc<SingleFlight<UserId, LookupResult>>,
    /// Resolved at the first lookup, not in `new`: the gateway installs the metrics recorder
    /// after building the directory, and resolving a counter per lookup costs a registry search
    /// and an allocation on the hit path.
    counters: OnceLock<Counters>,
}

/// `DIRECTORY_LOOKUPS{backend="ldap"}` by result.
struct Counters {
    hit: Counter,
    miss: Counter,
    error: Counter,
}

/// The directory server and how it is searched.
struct Source {
    url: String,
    starttls: bool,
    tls: Arc<ClientConfig>,
    bind: Option<Bind>,
    base_dn: String,
    filter: String,
    attributes: RawLdapAttributes,
    requested: [String; 5],
    timeout: Duration,
    pool_size: usize,
    idle: Mutex<Vec<Ldap>>,
    /// One permit per connection: bounds connections and concurrent searches to `pool_size`.
    slots: Semaphore,
}

struct Bind {
    dn: String,
    password: Password,
}

/// A bind password; its `Debug` never shows it.
struct Password(Box<str>);

/// A search result entry read without trusting its encoding: ldap3's `SearchEntry::construct`
/// panics on malformed entries.
struct RawEntry {
    dn: String,
    attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl LdapDirectory {
    /// Reads the CA and password files and builds the TLS client configuration with `provider`;
    /// connects on first use.
    pub fn new(config: &spinegate_config::Ldap, provider: &Arc<CryptoProvider>) -> Result<Self, DirectorySetupError> {
        if config.timeout.is_zero() {
            return Err(setup("timeout must be longer than zero".into()));
        }
        // A filter that cannot parse would fail every lookup: refuse it at startup instead.
        if ldap3::parse_filter(search_filter(&config.filter, "555000000000")).is_err() {
            return Err(setup(format!("filter {:?} is not an LDAP search filter (RFC 4515)", config.filter)));
        }
        let bind = match (&config.bind_dn, &config.bind_password_file) {
            (Some(dn), Some(path)) => Some(Bind { dn: dn.clone(), password: read_password(path)? }),
            // An unauthenticated bind (RFC 4513 5.1.2) is anonymous in disguise.
            (Some(_), None) => return Err(setup("bind_dn needs bind_password_file".into())),
            (None, _) => None,
        };
        let a = &config.attributes;
        let source = Source {
            url: config.url.clone(),
            starttls: config.starttls,
            tls: client_config(&config.ca, provider)?,
            bind,
            base_dn: config.base_dn.clone(),
            filter: config.filter.clone(),
            requested: [&a.role_profile_id, &a.organisation, &a.role_code, &a.activities, &a.workgroups]
                .map(String::clone),
            attributes: a.clone(),
            timeout: config.timeout,
            pool_size: config.pool_size.get(),
            idle: Mutex::new(Vec::with_capacity(config.pool_size.get())),
            slots: Semaphore::new(config.pool_size.get()),
        };
        let cache =
            Cache::builder().max_capacity(config.cache_entries).time_to_live(config.cache_ttl.min(MAX_TTL)).build();
        let flights = Arc::new(SingleFlight::new());
        Ok(Self { inner: Arc::new(Inner { source, cache, flights, counters: OnceLock::new() }) })
    }

    /// The user's role profiles; an empty entry when the directory holds none for them.
    pub async fn lookup(&self, user: &UserId) -> Result<Arc<DirectoryEntry>, DirectoryError> {
        let counters = self.inner.counters.get_or_init(Counters::resolve);
        if let Some(entry) = self.inner.cache.get(user) {
            counters.hit.increment(1);
            return Ok(entry);
        }
        let user = *user;
        let inner = Arc::clone(&self.inner);
        // A search that landed has cached its answer before leaving the flight table.
        let cached = || self.inner.cache.get(&user).map(Ok);
        let (flight, searched) = match self.inner.flights.join_or_start(user, cached, || inner.search(user)) {
            Boarding::Cached(answer) => {
                counters.hit.increment(1);
                return answer;
            }
            Boarding::Started(flight) => (flight, true),
            Boarding::Joined(flight) => (flight, false),
        };
        let answer = flight.landed().await;
        // One count per lookup: `miss` when this lookup caused the search, `hit` when it was
        // answered without one of its own.
        match (&answer, searched) {
            (Err(_), _) => counters.error.increment(1),
            (Ok(_), true) => counters.miss.increment(1),
            (Ok(_), false) => counters.hit.increment(1),
        }
        answer
    }
}

impl fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.source;
        f.debug_struct("LdapDirectory")
            .field("url", &s.url)
            .field("starttls", &s.starttls)
            .field("bind_dn", &s.bind.as_ref().map(|b| &b.dn))
            .field("base_dn", &s.base_dn)
            .field("filter", &s.filter)
            .field("pool_size", &s.pool_size)
            .field("timeout", &s.timeout)
            .field("cached_users", &self.inner.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Inner {
    /// One search for `user`, run as its own task (a lookup that goes away does not cancel it
    /// for the others waiting); the answer is cached before the flight lands.
    async fn search(self: Arc<Self>, user: UserId) -> LookupResult {
        let source = &self.source;
        let started = Instant::now();
        let answer = match tokio::time::timeout(source.timeout, source.fetch(&user)).await {
            Ok(Ok(found)) => Ok(Arc::new(source.entry(&user, found))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(source.timed_out()),
        };
        metrics::histogram!(m::DIRECTORY_LOOKUP_DURATION, "backend" => "ldap").record(started.elapsed().as_secs_f64());
        match &answer {
            Ok(entry) => {
                tracing::debug!(user = %user, roles = entry.roles.len(), elapsed = ?started.elapsed(), "role profiles read from LDAP");
                self.cache.insert(user, Arc::clone(entry));
            }
            Err(e) => tracing::warn!(user = %user, error = %e, "role directory lookup failed"),
        }
        answer
    }
}

impl Counters {
    fn resolve() -> Self {
        Self {
            hit: metrics::counter!(m::DIRECTORY_LOOKUPS, "backend" => "ldap", "result" => "hit"),
            miss: metrics::counter!(m::DIRECTORY_LOOKUPS, "backend" => "ldap", "result" => "miss"),
            error: metrics::counter!(m::DIRECTORY_LOOKUPS, "backend" => "ldap", "result" => "error"),
        }
    }
}

impl Source {
    /// The user's entries, on a pooled connection. The caller bounds the whole by `timeout`.
    async fn fetch(&self, user: &UserId) -> Result<Vec<ResultEntry>, DirectoryError> {
        let _slot = self.slots.acquire().await.map_err(|_| unavailable("the connection pool is closed".into()))?;
        let filter = search_filter(&self.filter, user.as_str());
        let (mut conn, mut pooled) = match self.take_idle() {
            Some(conn) => (conn, true),
            None => (self.connect().await?, false),
        };
        loop {
            match self.search(&mut conn, &filter).await {
                Ok(entries) => {
                    self.give_back(conn);
                    return Ok(entries);
                }
                // The server answered: the connection is sound, the request was refused.
                Err(e @ LdapError::LdapResult { .. }) => {
                    self.give_back(conn);
                    return Err(unavailable(format!("search under {:?} refused: {e}", self.base_dn)));
                }
                // An idle connection may have been closed by the server since it was last used.
                Err(e) if pooled && !matches!(e, LdapError::Timeout { .. }) => {
                    tracing::debug!(error = %e, "pooled LDAP connection failed; opening a new one");
                    conn = self.connect().await?;
                    pooled = false;
                }
                Err(LdapError::Timeout { .. }) => return Err(self.timed_out()),
                Err(e) => return Err(unavailable(format!("search on {} failed: {e}", self.url))),
            }
        }
    }

    fn timed_out(&self) -> DirectoryError {
        unavailable(format!("no answer from {} within {:?}", self.url, self.timeout))
    }

    async fn search(&self, conn: &mut Ldap, filter: &str) -> Result<Vec<ResultEntry>, LdapError> {
        let seconds = i32::try_from(self.timeout.as_secs().max(1)).unwrap_or(i32::MAX);
        let limits = SearchOptions::new().sizelimit(MAX_ENTRIES).timelimit(seconds);
        let result = conn
            .with_search_options(limits)
            .with_timeout(self.timeout)
            .search(&self.base_dn, Scope::Subtree, filter, &self.requested)
            .await?;
        Ok(result.success()?.0)
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let settings = LdapConnSettings::new()
            .set_config(Arc::clone(&self.tls))
            .set_starttls(self.starttls)
            .set_conn_timeout(self.timeout);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| unavailable(format!("cannot connect to {}: {e}", self.url)))?;
        // What `ldap3::drive!` does, logging through tracing rather than `log`.
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        if let Some(bind) = &self.bind {
            ldap.with_timeout(self.timeout)
                .simple_bind(&bind.dn, &bind.password.0)
                .await
                .and_then(ldap3::LdapResult::success)
                .map_err(|e| unavailable(format!("bind to {} as {:?} failed: {e}", self.url, bind.dn)))?;
        }
        tracing::debug!(url = %self.url, "LDAP connection opened");
        Ok(ldap)
    }

    fn take_idle(&self) -> Option<Ldap> {
        let mut idle = lock(&self.idle);
        // A connection whose driver has ended (server closed it) is dropped here.
        std::iter::from_fn(|| idle.pop()).find_map(|mut conn| (!conn.is_closed()).then_some(conn))
    }

    fn give_back(&self, conn: Ldap) {
        let mut idle = lock(&self.idle);
        if idle.len() < self.pool_size {
            idle.push(conn);
        }
    }

    /// The role profiles among `found`; entries that are not one are logged and skipped, and so
    /// are entries that claim the same role profile id (which of them is right cannot be told).
    fn entry(&self, user: &UserId, found: Vec<ResultEntry>) -> DirectoryEntry {
        let mut roles: Vec<(String, RoleData)> = Vec::with_capacity(found.len());
        for result in found {
            let Some(raw) = RawEntry::read(result.0) else {
                tracing::warn!(user = %user, "malformed LDAP search result entry skipped");
                continue;
            };
            match raw.role(&self.attributes) {
                Ok(role) => roles.push((raw.dn, role)),
                Err(reason) => {
                    tracing::warn!(user = %user, dn = %raw.dn, %reason, "LDAP entry is not a usable role profile; skipped");
                }
            }
        }
        let claims = |id: &str| roles.iter().filter(|(_, r)| &*r.id == id).count();
        let (unique, ambiguous): (Vec<_>, Vec<_>) = roles.iter().partition(|(_, r)| claims(&r.id) == 1);
        for (dn, role) in ambiguous {
            tracing::warn!(user = %user, dn = %dn, id = %role.id, "LDAP role profile id held by more than one entry; skipped");
        }
        let roles = unique.into_iter().map(|(_, role)| role.clone()).collect();
        DirectoryEntry { roles, slot: RoleSlot::default() }
    }
}

impl RawEntry {
    /// `SearchResultEntry ::= [APPLICATION 4] SEQUENCE { objectName, attributes SEQUENCE OF
    /// SEQUENCE { type, vals SET OF value } }`; `None` when the server sent something else.
    fn read(tag: StructureTag) -> Option<Self> {
        let mut parts = tag.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8_lossy(&parts.next()?.expect_primitive()?).into_owned();
        let mut attrs = Vec::new();
        for attr in parts.next()?.expect_constructed()? {
            let mut attr = attr.expect_constructed()?.into_iter();
            let name = String::from_utf8(attr.next()?.expect_primitive()?).ok()?;
            let values = attr
                .next()?
                .expect_constructed()?
                .into_iter()
                .map(StructureTag::expect_primitive)
                .collect::<Option<_>>()?;
            attrs.push((name, values));
        }
        Some(Self { dn, attrs })
    }

    fn values<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        self.attrs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().map(Vec::as_slice))
    }

    /// The one, non-blank value of `name`.
    fn one(&self, name: &str) -> Result<&str, String> {
        let mut values = self.values(name);
        match (values.next(), values.next()) {
            (None, _) => Err(format!("no {name}")),
            (Some(_), Some(_)) => Err(format!("more than one {name}")),
            (Some(value), None) => match std::str::from_utf8(value).map(str::trim) {
                Ok("") => Err(format!("{name} is blank")),
                Ok(value) => Ok(value),
                Err(_) => Err(format!("{name} is not UTF-8")),
            },
        }
    }

    /// Every value of `name` (possibly none).
    fn all(&self, name: &str) -> Result<Arc<[Box<str>]>, String> {
        self.values(name)
            .map(|v| std::str::from_utf8(v).map(|s| Box::from(s.trim())).map_err(|_| format!("a {name} is not UTF-8")))
            .collect()
    }

    fn role(&self, names: &RawLdapAttributes) -> Result<RoleData, String> {
        let id = self.one(&names.role_profile_id)?;
        let org = self.one(&names.organisation)?.to_ascii_uppercase();
        if !spinegate_vocab::is_ods_code(&org) {
            return Err(format!("{} {org:?} is not an ODS code", names.organisation));
        }
        Ok(RoleData {
            id: id.into(),
            org: org.into(),
            role_code: self.one(&names.role_code)?.into(),
            activity_codes: self.all(&names.activities)?,
            workgroups: self.all(&names.workgroups)?,
        })
    }
}

/// The filter for one user: `{user_id}` replaced by the id escaped per RFC 4515, so no value can
/// change the filter's shape.
fn search_filter(template: &str, user_id: &str) -> String {
    template.replace("{user_id}", &ldap3::ldap_escape(user_id))
}

fn client_config(cas: &[PathBuf], provider: &Arc<CryptoProvider>) -> Result<Arc<ClientConfig>, DirectorySetupError> {
    // Always set, even for plain ldap://: ldap3 would otherwise fall back to the system roots.
    let roots = crate::material::ca_roots(cas).map_err(|e| setup(e.to_string()))?;
    let config = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("TLS client configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_password(path: &Path) -> Result<Password, DirectorySetupError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| setup(format!("bind password file {}: {e}", path.display())))?;
    // Editors add a final newline; a password never ends in one.
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(setup(format!("bind password file {} is empty", path.display())));
    }
    Ok(Password(password.into()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one still holds consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn setup(reason: String) -> DirectorySetupError {
    DirectorySetupError::Ldap(reason)
}

fn unavailable(reason: String) -> DirectoryError {
    DirectoryError::Unavailable(reason)
}

#[cfg(test)]
mod tests {
    use ldap3::asn1::{PL, TagClass};

    use super::*;

    fn octets(bytes: &[u8]) -> StructureTag {
        StructureTag { class: TagClass::Universal, id: 4, payload: PL::P(bytes.to_vec()) }
    }

    fn constructed(class: TagClass, id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag { class, id, payload: PL::C(inner) }
    }

    fn entry(attrs: &[(&str, &[&[u8]])]) -> StructureTag {
        let attrs = attrs
            .iter()
            .map(|(name, values)| {
                let values = values.iter().map(|v| octets(v)).collect();
                constructed(
                    TagClass::Universal,
                    16,
                    vec![octets(name.as_bytes()), constructed(TagClass::Universal, 17, values)],
                )
            })
            .collect();
        constructed(TagClass::Application, 4, vec![octets(b"cn=x,dc=nhs"), constructed(TagClass::Universal, 16, attrs)])
    }

    #[test]
    fn the_user_id_is_escaped_into_the_filter() {
        let template = "(&(objectClass=nhsOrgPersonRole)(uid={user_id}))";
        assert_eq!(search_filter(template, "555000000001"), "(&(objectClass=nhsOrgPersonRole)(uid=555000000001))");
        assert_eq!(search_filter(template, "*)(uid=*"), r"(&(objectClass=nhsOrgPersonRole)(uid=\2a\29\28uid=\2a))");
        assert_eq!(search_filter("(uid={user_id})", "a\\b\0"), r"(uid=a\5cb\00)");
    }

    #[test]
    fn entries_become_role_profiles_and_odd_ones_are_refused_with_the_reason() {
        let names = RawLdapAttributes::default();
        let good: &[(&str, &[&[u8]])] = &[
            ("uniqueidentifier", &[b"555254242101"]),
            ("nhsOrgCode", &[b"a81001"]),
            ("nhsJobRoleCode", &[b"S8000:G8000:R8000"]),
            ("nhsActivityCode", &[b"B0360", b"B0370"]),
        ];
        let role = RawEntry::read(entry(good)).unwrap().role(&names).unwrap();
        assert_eq!((&*role.id, &*role.org, &*role.role_code), ("555254242101", "A81001", "S8000:G8000:R8000"));
        assert_eq!(&*role.activity_codes, [Box::from("B0360"), Box::from("B0370")]);
        assert!(role.workgroups.is_empty());

        for (change, expect) in [
            (("nhsOrgCode", &[][..]), "no nhsOrgCode"),
            (("nhsOrgCode", &[&b"A1"[..], b"B2"][..]), "more than one nhsOrgCode"),
            (("nhsOrgCode", &[&b"not ods!"[..]][..]), "not an ODS code"),
            (("nhsOrgCode", &[&b"\xff\xfe"[..]][..]), "not UTF-8"),
            (("nhsJobRoleCode", &[&b"  "[..]][..]), "blank"),
        ] {
            let attrs: Vec<_> = good.iter().map(|a| if a.0 == change.0 { change } else { *a }).collect();
            let err = RawEntry::read(entry(&attrs)).unwrap().role(&names).unwrap_err();
            assert!(err.contains(expect), "{err}");
        }
    }

    #[test]
    fn malformed_entries_are_refused_without_panicking() {
        let not_an_entry = octets(b"x");
        let no_attributes = constructed(TagClass::Application, 4, vec![octets(b"cn=x")]);
        let primitive_values = constructed(
            TagClass::Application,
            4,
            vec![octets(b"cn=x"), constructed(TagClass::Universal, 16, vec![octets(b"uid")])],
        );
        let binary_type = entry(&[("uid", &[b"1"])]);
        let PL::C(mut parts) = binary_type.payload else { unreachable!("built constructed") };
        parts[0] = octets(b"\xff cn");
        let binary_dn = constructed(TagClass::Application, 4, parts);
        assert!(RawEntry::read(not_an_entry).is_none());
        assert!(RawEntry::read(no_attributes).is_none());
        assert!(RawEntry::read(primitive_values).is_none());
        assert_eq!(RawEntry::read(binary_dn).unwrap().attrs.len(), 1, "a non-UTF-8 DN is shown lossily");
    }
}
