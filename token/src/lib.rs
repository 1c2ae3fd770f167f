//! # spinegate-token
//!
//! Bearer tokens from Care Identity (and any configured OpenID provider), verified without ever
//! trusting what the token says about how to verify it: the issuer is chosen by `iss`, but the
//! key comes from that issuer's key set and the algorithm from its allow-list; headers that bring
//! their own keys are refused, and `typ` must fit the use (an access token, a logout token).
//! Verified tokens are remembered until they expire; a hit is judged again for expiry, age, key
//! changes and logout. Back-channel logout tokens end sessions.
//!
//! No I/O but the key-set fetch, behind [`KeyFetch`]; metrics go through an [`Observer`]; time is
//! a parameter (`now`, Unix seconds) of every check.
//!
//! ## Layout
//! - [`verifier`]: [`TokenVerifier`], [`VerifiedToken`], [`TokenError`].
//! - [`options`]: [`Options`], [`IssuerOptions`], [`KeySource`], and the [`Observer`] of outcomes.
//! - [`jose`]: strict base64url, JWKs, compact JWS checks and verification.
//! - [`claims`]: registered and Care Identity claims.
//! - [`jwks`]: fetching and refreshing an issuer's keys.
//! - [`logout`]: back-channel logout.
//! - [`json`]: JSON that refuses duplicate members.
//! - [`weak_key`]: known-weak public keys (ROCA), refused for token keys and smartcards alike.

pub mod claims;
pub mod jose;
pub mod json;
pub mod jwks;
pub mod logout;
pub mod options;
pub mod verifier;
pub mod weak_key;

pub use jwks::KeyFetch;
pub use options::{IssuerOptions, JwksOptions, KeySource, NoObserver, Observer, Options};
pub use verifier::{TokenError, TokenVerifier, VerifiedToken};
