//! A blocking client for one repository of an OCI distribution registry:
//! manifests and blobs down, blobs and manifests up.
//!
//! Transport. A registry is reached over HTTPS, verified against the
//! system's CA roots (as rustls-native-certs finds them: `SSL_CERT_FILE`,
//! `SSL_CERT_DIR`, else the distribution's bundle) plus `Options::ca_file`.
//! An *insecure* registry is handled as Docker handles one: HTTPS without
//! certificate verification first, and plain HTTP when that fails. A
//! registry is insecure when `Options::insecure` says so, or when its host
//! is loopback (`localhost`, 127.0.0.0/8, `::1`) and no `ca_file` was given:
//! naming a CA for a loopback registry asks for it to be verified, which is
//! also how the TLS path is tested here. The scheme is settled once per
//! client by `GET /v2/`, which also tells how the registry authenticates.
//!
//! Authentication, as the distribution spec and Docker's token spec have
//! it: a 401 carries `WWW-Authenticate`; `Basic` is answered with the
//! credentials, `Bearer` with a token fetched from the challenge's realm for
//! `repository:<repo>:pull` (or `pull,push` to upload), sent with the
//! credentials if there are any. Tokens are cached per access level. The
//! credentials come from `Options::creds`, else from the auth files (see
//! [`auth::credentials_for`]).
//!
//! Faults. A request that fails for a reason that may pass (a connection
//! reset, refused or timed out, a 5xx other than 501, a 429) is sent again
//! after a backoff that doubles from `Options::retry_base` (200 ms) up to
//! 5 s, `Options::attempts` (5) times in all; a 429's `Retry-After` of up to
//! 10 s is waited for, a longer one ends the pull at once (waiting minutes
//! is the user's call, not ours). Other 4xx answers are final. The first
//! contact (`GET /v2/`) does not retry a refused connection: nothing
//! listens there. A blob whose body breaks off (an error or a read that
//! waits longer than `Options::read_timeout`, 60 s) is asked for again
//! from where it stopped, with `Range: bytes=N-`; a `206 Partial Content`
//! continues the stream, a `200` (a server without ranges) is read from 0
//! and its first N bytes dropped, so the caller's hash sees each byte once
//! and in order. Whether the spliced stream is right is the digest's to
//! say: the caller verifies it (and `pull` fetches a mismatching blob once
//! more from scratch). For tests, `$HOIST_RETRY_BASE_MS`,
//! `$HOIST_RETRY_ATTEMPTS` and `$HOIST_READ_TIMEOUT_MS` set the defaults.
//!
//! Every error is one line naming the registry and repository, and the tag
//! or digest when there is one; one given up on after retries says how many
//! attempts were made.

use super::auth::{self, Challenge, Scheme};
use super::layout::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use super::reference::{self, Reference};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256, Sha512};
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use ureq::http::{Response, StatusCode};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Body};

/// Manifests are small JSON documents; a bigger answer is not a manifest.
pub const MANIFEST_MAX: u64 = 4 << 20;
/// Error bodies and token answers are read only this far.
const SMALL_MAX: u64 = 1 << 20;
/// The manifest types asked for: a registry converts or refuses others.
const ACCEPT: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
/// Docker Hub's API lives on another host than the name images carry.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Tries of one request, the first included, unless told otherwise.
const ATTEMPTS: u32 = 5;
/// The first backoff; it doubles with each failure.
const RETRY_BASE: Duration = Duration::from_millis(200);
/// No backoff is longer: a registry that is down for longer fails the pull.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A `Retry-After` up to this is waited for; a longer one ends the pull.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(10);
/// A transport read that waits longer than this counts as a failure (a
/// stalled server); the request is sent again.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

// No Debug: it would print the password.
#[derive(Default, Clone)]
pub struct Options {
    /// Plain HTTP and unverified TLS allowed for this registry, like skopeo's
    /// `--tls-verify=false`. Loopback registries are insecure unless
    /// `ca_file` is given (see the module doc).
    pub insecure: bool,
    /// Explicit credentials `user:password` (like skopeo's `--creds`); they
    /// override the auth files.
    pub creds: Option<String>,
    /// An auth file to read instead of the default search (like `--authfile`).
    pub auth_file: Option<PathBuf>,
    /// PEM certificates trusted as roots besides the system's (like a
    /// certs.d directory's `ca.crt`).
    pub ca_file: Option<PathBuf>,
    /// Tries of a request, the first included (else `$HOIST_RETRY_ATTEMPTS`,
    /// else 5); 1 disables retries.
    pub attempts: Option<u32>,
    /// The first backoff between tries (else `$HOIST_RETRY_BASE_MS`, else
    /// 200 ms).
    pub retry_base: Option<Duration>,
    /// How long one read may wait for data (else `$HOIST_READ_TIMEOUT_MS`,
    /// else 60 s).
    pub read_timeout: Option<Duration>,
}

/// An env var holding a number, if set; a set but unparsable value is an
/// error rather than silently the default.
fn env_number(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Other(format!("${name}: \"{v}\" is not a whole number"))),
        Err(_) => Ok(None),
    }
}

/// How a client retries, settled from `Options` and the environment.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    base: Duration,
}

impl Retry {
    fn from(opts: &Options) -> Result<Retry> {
        let attempts = match opts.attempts {
            Some(n) => n,
            None => env_number("HOIST_RETRY_ATTEMPTS")?
                .map_or(ATTEMPTS, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        };
        let base = match opts.retry_base {
            Some(d) => d,
            None => env_number("HOIST_RETRY_BASE_MS")?.map_or(RETRY_BASE, Duration::from_millis),
        };
        Ok(Retry {
            attempts: attempts.max(1),
            base,
        })
    }

    /// The wait after failed try number `attempt` (1-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(RETRY_MAX)
    }
}

/// Whether a status is worth asking again for: overload and gateway
/// trouble, not a request the registry understood and refused.
fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || (s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED)
}

/// Whether a transport error may pass if the request is sent again. A
/// refused connection counts only once the registry has answered (it may
/// be restarting); TLS and protocol errors are final: they would repeat.
fn transient(e: &ureq::Error, refused_too: bool) -> bool {
    use io::ErrorKind as K;
    match e {
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(io) => match io.kind() {
            K::ConnectionRefused => refused_too,
            K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::TimedOut
            | K::WouldBlock
            | K::Interrupted
            | K::NotConnected => true,
            _ => false,
        },
        _ => false,
    }
}

/// A `Retry-After` in seconds (the HTTP-date form is not worth parsing:
/// registries send seconds).
fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    header(resp, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Why a request was given up on: the text for the error line.
enum GaveUp {
    /// A transport error (`net_text`).
    Net(String),
    /// An error answer (`error_detail`).
    Status(String),
    /// Not a transport or status failure: as it is.
    Final(Error),
}

impl GaveUp {
    /// What an error line adds after `attempts` tries.
    fn suffix(attempts: u32) -> String {
        if attempts > 1 {
            format!(" (gave up after {attempts} attempts)")
        } else {
            String::new()
        }
    }

    /// The reason, saying it was the last of `attempts` tries.
    fn after(self, attempts: u32) -> GaveUp {
        let n = |t: String| t + &Self::suffix(attempts);
        match self {
            GaveUp::Net(t) => GaveUp::Net(n(t)),
            GaveUp::Status(t) => GaveUp::Status(n(t)),
            f => f,
        }
    }
}

/// Why one try of a request failed.
enum Failure {
    /// A transport error, maybe transient.
    Net(ureq::Error),
    /// Anything else: final.
    Final(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

/// Builds and sends one request from the base URL and the Authorization
/// header, so that it can be sent again after a challenge.
type SendFn<'a> =
    dyn Fn(&str, Option<&str>) -> std::result::Result<Response<Body>, ureq::Error> + 'a;

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<Access, String>,
}

/// One repository on one registry. Shared by threads that fetch layers
/// concurrently: the connection pool, the scheme and the tokens are common.
pub struct Client {
    agent: Agent,
    /// `registry/repository`, for messages.
    name: String,
    /// Host the API is reached at (`host[:port]`).
    api_host: String,
    repository: String,
    insecure: bool,
    creds: Option<(String, String)>,
    /// `scheme://host`, once `GET /v2/` has settled it.
    base: Mutex<Option<String>>,
    auth: Mutex<AuthState>,
    retry: Retry,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked holding the lock leaves plain data behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a `host[:port]` is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's roots plus those in `ca_file`.
fn roots(ca_file: Option<&Path>) -> Result<Vec<Certificate<'static>>> {
    let native = rustls_native_certs::load_native_certs();
    let mut certs: Vec<Certificate<'static>> = native
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(f) = ca_file {
        let pem = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::Config {
                        path: f.to_path_buf(),
                        msg: format!("not a PEM certificate file: {e}"),
                    })
                }
            }
        }
        if certs.len() == before {
            return Err(Error::Config {
                path: f.to_path_buf(),
                msg: "no PEM certificate in it".into(),
            });
        }
    }
    Ok(certs)
}

fn is_digest(s: &str) -> bool {
    s.contains(':')
}

/// `value` percent-encoded for a query string.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `bytes` hash to `digest` (sha256 or sha512).
fn digest_matches(digest: &str, bytes: &[u8]) -> Result<bool> {
    let (algo, hex) = digest.split_once(':').unwrap_or(("", digest));
    let got = match algo {
        "sha256" => hex::encode(Sha256::digest(bytes)),
        "sha512" => hex::encode(Sha512::digest(bytes)),
        _ => {
            return Err(Error::Unsupported(format!(
                "digest algorithm \"{algo}\" (in {digest})"
            )))
        }
    };
    Ok(got == hex)
}

/// The registry's own words from an error answer: the codes and messages of
/// a `{"errors": [...]}` body, else its first line.
fn error_detail(resp: Response<Body>) -> String {
    let status = resp.status();
    let text = resp
        .into_body()
        .into_with_config()
        .limit(SMALL_MAX)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let mut parts = Vec::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        for e in v
            .get("errors")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            parts.push(match (code, msg) {
                ("", m) => m.to_string(),
                (c, "") => c.to_string(),
                (c, m) => format!("{c}: {m}"),
            });
        }
    } else if let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
        parts.push(line.chars().take(200).collect());
    }
    let status = status_text(status);
    if parts.is_empty() {
        status
    } else {
        format!("{} ({status})", parts.join("; "))
    }
}

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The first challenge we can answer among the response's
/// `WWW-Authenticate` headers.
fn challenge_of(resp: &Response<Body>) -> Option<Challenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| auth::parse_challenge(v).ok())
}

/// A transport error in one line (ureq's own text for TLS failures is
/// already specific: "invalid peer certificate: UnknownIssuer").
fn net_text(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
    }
}

impl Client {
    pub fn new(r: &Reference, opts: &Options) -> Result<Client> {
        let name = r.repo_name();
        let insecure = opts.insecure || (is_loopback(&r.registry) && opts.ca_file.is_none());
        let creds = match &opts.creds {
            Some(c) => {
                let (u, p) = c.split_once(':').ok_or_else(|| {
                    Error::Other(format!("{name}: credentials must be user:password"))
                })?;
                Some((u.to_string(), p.to_string()))
            }
            None => auth::credentials_for(&r.registry, opts.auth_file.as_deref())?,
        };
        let retry = Retry::from(opts)?;
        let read_timeout = match opts.read_timeout {
            Some(d) => d,
            None => {
                env_number("HOIST_READ_TIMEOUT_MS")?.map_or(READ_TIMEOUT, Duration::from_millis)
            }
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(ring());
        let tls = if insecure {
            tls.disable_verification(true)
        } else {
            tls.root_certs(RootCerts::new_with_certs(&roots(opts.ca_file.as_deref())?))
        };
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            // Per read, not per body: a big layer may take long, but a
            // server that stops sending mid-body must not hang the pull.
            .timeout_per_read(Some(read_timeout))
            // Blobs often redirect to a storage host that must not see the
            // registry's credentials.
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .build()
            .new_agent();
        let api_host = if r.registry == reference::DOCKER_HUB {
            DOCKER_HUB_API.to_string()
        } else {
            r.registry.clone()
        };
        Ok(Client {
            agent,
            name,
            api_host,
            repository: r.repository.clone(),
            insecure,
            creds,
            base: Mutex::new(None),
            auth: Mutex::new(AuthState::default()),
            retry,
        })
    }

    fn err(&self, what: &str, why: impl std::fmt::Display) -> Error {
        Error::Other(format!("{}{what}: {why}", self.name))
    }

    fn net_err(&self, what: &str, e: &ureq::Error) -> Error {
        self.err(
            what,
            format!("cannot reach registry {}: {}", self.api_host, net_text(e)),
        )
    }

    /// Sends a request by `once` until it gets an answer that is not worth
    /// retrying, or the tries run out. `refused_too` says whether a refused
    /// connection may pass (see [`transient`]).
    fn retry_loop(
        &self,
        refused_too: bool,
        once: &mut dyn FnMut() -> std::result::Result<Response<Body>, Failure>,
    ) -> std::result::Result<Response<Body>, GaveUp> {
        let mut attempt = 1;
        loop {
            let (why, wait) = match once() {
                Ok(resp) if retryable_status(resp.status()) => {
                    let after = retry_after(&resp);
                    let detail = error_detail(resp);
                    if let Some(after) = after.filter(|a| *a > RETRY_AFTER_MAX) {
                        return Err(GaveUp::Status(format!(
                            "{detail}; the registry asks to retry after {} s, not waiting",
                            after.as_secs()
                        )));
                    }
                    (GaveUp::Status(detail), after)
                }
                Ok(resp) => return Ok(resp),
                Err(Failure::Net(e)) if transient(&e, refused_too) => {
                    (GaveUp::Net(net_text(&e)), None)
                }
                Err(Failure::Net(e)) => return Err(GaveUp::Net(net_text(&e))),
                Err(Failure::Final(e)) => return Err(GaveUp::Final(e)),
            };
            if attempt >= self.retry.attempts {
                return Err(why.after(attempt));
            }
            let backoff = self.retry.backoff(attempt);
            std::thread::sleep(wait.map_or(backoff, |w| w.max(backoff)));
            attempt += 1;
        }
    }

    /// [`Client::retry_loop`], its failure as one line about `what`.
    fn retrying(
        &self,
        what: &str,
        once: &mut dyn FnMut() -> std::result::Result<Response<Body>, Failure>,
    ) -> Result<Response<Body>> {
        self.retry_loop(true, once).map_err(|g| match g {
            GaveUp::Net(t) => self.err(
                what,
                format!("cannot reach registry {}: {t}", self.api_host),
            ),
            GaveUp::Status(t) => self.err(what, t),
            GaveUp::Final(e) => e,
        })
    }

    /// `scheme://host`, settled by the first `GET /v2/`.
    fn base(&self) -> Result<String> {
        let mut base = lock(&self.base);
        if let Some(b) = &*base {
            return Ok(b.clone());
        }
        let schemes: &[&str] = if self.insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut failures = Vec::new();
        for scheme in schemes {
            let b = format!("{scheme}://{}", self.api_host);
            // A scheme that cannot work fails at once (TLS against plain
            // HTTP, nothing listening); a timeout or a 5xx is tried again
            // before the next scheme.
            let got = self.retry_loop(false, &mut || {
                self.agent
                    .get(format!("{b}/v2/"))
                    .call()
                    .map_err(Failure::Net)
            });
            let resp = match got {
                Ok(resp) => resp,
                Err(GaveUp::Net(t)) => {
                    failures.push(format!("{scheme}: {t}"));
                    continue;
                }
                Err(GaveUp::Status(t)) => {
                    return Err(self.err("", format!("{b}/v2/ answered {t}")));
                }
                Err(GaveUp::Final(e)) => return Err(e),
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                lock(&self.auth).challenge = challenge_of(&resp);
            } else if !status.is_success() {
                return Err(self.err(
                    "",
                    format!(
                        "{b}/v2/ answered {}: not an OCI registry",
                        error_detail(resp)
                    ),
                ));
            }
            *base = Some(b.clone());
            return Ok(b);
        }
        Err(self.err(
            "",
            format!(
                "cannot reach registry {}: {}",
                self.api_host,
                failures.join("; ")
            ),
        ))
    }

    /// The `Authorization` header for `access`, fetching a token when the
    /// registry wants one and none is cached.
    fn authorization(&self, what: &str, access: Access) -> Result<Option<String>> {
        let mut st = lock(&self.auth);
        let Some(ch) = st.challenge.clone() else {
            return Ok(None);
        };
        match ch.scheme {
            Scheme::Basic => Ok(self.creds.as_ref().map(|(u, p)| auth::basic(u, p))),
            Scheme::Bearer => {
                if let Some(t) = st.tokens.get(&access) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                // Fetched under the lock: concurrent pulls wait for one token
                // rather than each asking for their own.
                let token = self.fetch_token(what, &ch, access)?;
                st.tokens.insert(access, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn fetch_token(&self, what: &str, ch: &Challenge, access: Access) -> Result<String> {
        let realm = ch
            .param("realm")
            .ok_or_else(|| self.err(what, "the registry's Bearer challenge names no realm"))?;
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(service) = ch.param("service") {
            url.push_str(&format!("{sep}service={}", query_escape(service)));
            sep = '&';
        }
        let scope = format!("repository:{}:{}", self.repository, access.actions());
        url.push_str(&format!("{sep}scope={}", query_escape(&scope)));
        let resp = self
            .retry_loop(true, &mut || {
                let mut req = self.agent.get(&url);
                if let Some((u, p)) = &self.creds {
                    req = req.header("Authorization", auth::basic(u, p));
                }
                req.call().map_err(Failure::Net)
            })
            .map_err(|g| match g {
                GaveUp::Net(t) => self.err(what, format!("cannot reach token server {realm}: {t}")),
                GaveUp::Status(t) => self.err(what, format!("token server {realm}: {t}")),
                GaveUp::Final(e) => e,
            })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.err(
                what,
                format!(
                    "authentication failed{} at token server {realm}: {}",
                    self.as_user(),
                    error_detail(resp)
                ),
            ));
        }
        if !status.is_success() {
            return Err(self.err(
                what,
                format!("token server {realm}: {}", error_detail(resp)),
            ));
        }
        let v: serde_json::Value = resp
            .into_body()
            .into_with_config()
            .limit(SMALL_MAX)
            .read_to_vec()
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| self.err(what, format!("token server {realm}: bad answer: {e}")))?;
        ["token", "access_token"]
            .iter()
            .find_map(|k| v.get(k).and_then(|t| t.as_str()).filter(|t| !t.is_empty()))
            .map(str::to_string)
            .ok_or_else(|| self.err(what, format!("token server {realm}: answer has no token")))
    }

    fn as_user(&self) -> String {
        match &self.creds {
            Some((u, _)) => format!(" for user \"{u}\""),
            None => String::new(),
        }
    }

    /// Send a request (built by `send` from the base URL and the
    /// Authorization header), answering one authentication challenge, and
    /// again while it fails in a way that may pass (see the module doc).
    fn call(&self, what: &str, access: Access, send: &SendFn<'_>) -> Result<Response<Body>> {
        let base = self.base()?;
        self.retrying(what, &mut || self.call_once(&base, what, access, send))
    }

    fn call_once(
        &self,
        base: &str,
        what: &str,
        access: Access,
        send: &SendFn<'_>,
    ) -> std::result::Result<Response<Body>, Failure> {
        let mut authz = self.authorization(what, access).map_err(Failure::Final)?;
        let mut retried = false;
        loop {
            let resp = send(base, authz.as_deref()).map_err(Failure::Net)?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = challenge_of(&resp);
            let basic_sent = authz.as_deref().is_some_and(|a| a.starts_with("Basic "));
            let can_retry = !retried
                && challenge.is_some()
                && !(basic_sent && challenge.as_ref().map(|c| c.scheme) == Some(Scheme::Basic))
                && (self.creds.is_some()
                    || challenge.as_ref().map(|c| c.scheme) == Some(Scheme::Bearer));
            if !can_retry {
                let why = if self.creds.is_some() || authz.is_some() {
                    format!("authentication failed{}", self.as_user())
                } else {
                    "authentication required (no credentials given or found in the auth files)"
                        .to_string()
                };
                return Err(Failure::Final(
                    self.err(what, format!("{why}: {}", error_detail(resp))),
                ));
            }
            {
                let mut st = lock(&self.auth);
                st.challenge = challenge;
                st.tokens.remove(&access);
            }
            retried = true;
            authz = self.authorization(what, access).map_err(Failure::Final)?;
        }
    }

    fn url(&self, base: &str, rest: &str) -> String {
        format!("{base}/v2/{}/{rest}", self.repository)
    }

    /// `:tag` or `@digest`, for messages.
    fn at(reference: &str) -> String {
        if is_digest(reference) {
            format!("@{reference}")
        } else {
            format!(":{reference}")
        }
    }

    fn check_reference(&self, reference: &str) -> Result<()> {
        if is_digest(reference) {
            reference::check_digest(reference).map_err(|why| self.err("", why))
        } else if reference::valid_tag(reference) {
            Ok(())
        } else {
            Err(self.err("", format!("invalid tag \"{reference}\"")))
        }
    }

    /// The manifest (or index) `reference` names: its bytes, media type and
    /// sha256 digest. A digest reference is verified against the bytes.
    pub fn manifest(&self, reference: &str) -> Result<(Vec<u8>, String, String)> {
        self.check_reference(reference)?;
        let what = Self::at(reference);
        // A body that breaks off is asked for again whole: manifests are
        // small, and their digest is checked below.
        let mut attempt = 1;
        let (bytes, content_type) = loop {
            let resp = self.call(&what, Access::Pull, &|base, authz| {
                let mut req = self
                    .agent
                    .get(self.url(base, &format!("manifests/{reference}")))
                    .header("Accept", ACCEPT.join(", "));
                if let Some(a) = authz {
                    req = req.header("Authorization", a);
                }
                req.call()
            })?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                return Err(self.err(&what, format!("manifest not found: {}", error_detail(resp))));
            }
            if !status.is_success() {
                return Err(self.err(&what, error_detail(resp)));
            }
            let content_type = header(&resp, "content-type")
                .and_then(|c| c.split(';').next())
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            match resp
                .into_body()
                .into_with_config()
                .limit(MANIFEST_MAX)
                .read_to_vec()
            {
                Ok(bytes) => break (bytes, content_type),
                Err(ureq::Error::BodyExceedsLimit(_)) => {
                    return Err(self.err(
                        &what,
                        format!("manifest larger than {} MiB", MANIFEST_MAX >> 20),
                    ))
                }
                Err(_) if attempt < self.retry.attempts => {
                    std::thread::sleep(self.retry.backoff(attempt));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(self.err(
                        &what,
                        format!(
                            "reading manifest: {}{}",
                            net_text(&e),
                            GaveUp::suffix(attempt)
                        ),
                    ))
                }
            }
        };
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if is_digest(reference) && !digest_matches(reference, &bytes)? {
            return Err(self.err(
                &what,
                format!("the registry sent a manifest whose digest is {digest}, not {reference}"),
            ));
        }
        let media_type = match content_type.as_str() {
            "" | "application/json" | "text/plain" | "application/octet-stream" => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| self.err(&what, format!("manifest is not JSON: {e}")))?;
                match v.get("mediaType").and_then(|m| m.as_str()) {
                    Some(m) => m.to_string(),
                    // An OCI document may leave mediaType out; its shape tells.
                    None if v.get("manifests").is_some() => OCI_INDEX.to_string(),
                    None => OCI_MANIFEST.to_string(),
                }
            }
            ct => ct.to_string(),
        };
        Ok((bytes, media_type, digest))
    }

    /// The blob's body as it arrives; the caller verifies digest and size.
    /// A body that breaks off is resumed (see the module doc), so the
    /// reader fails only once the tries are spent.
    pub fn blob(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>> {
        let what = format!("@{digest}");
        reference::check_digest(digest).map_err(|why| self.err("", why))?;
        let (inner, total, skip) = self.open_blob(&what, digest, 0)?;
        Ok(Box::new(BlobBody {
            client: self,
            digest: digest.to_string(),
            what,
            inner: Some(inner),
            pos: 0,
            total,
            skip,
            tries: 1,
            stalls: 0,
        }))
    }

    /// `GET` a blob from byte `from` on: its body, its whole size when the
    /// answer tells, and how many bytes at the start of the body to drop
    /// (a server that ignores the Range sends all of it again).
    fn open_blob(
        &self,
        what: &str,
        digest: &str,
        from: u64,
    ) -> Result<(ureq::BodyReader<'static>, Option<u64>, u64)> {
        let resp = self.call(what, Access::Pull, &|base, authz| {
            let mut req = self.agent.get(self.url(base, &format!("blobs/{digest}")));
            if from > 0 {
                req = req.header("Range", format!("bytes={from}-"));
            }
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.call()
        })?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(self.err(what, format!("blob not found: {}", error_detail(resp))));
        }
        if from > 0 && status == StatusCode::RANGE_NOT_SATISFIABLE {
            // The server will not give that range; all of it, then.
            drop(resp);
            let (r, total, _) = self.open_blob(what, digest, 0)?;
            return Ok((r, total, from));
        }
        if !status.is_success() {
            return Err(self.err(what, error_detail(resp)));
        }
        if status == StatusCode::PARTIAL_CONTENT {
            // "bytes START-END/TOTAL": anything but our START cannot be
            // spliced on; read the whole blob then.
            let range = header(&resp, "content-range").and_then(parse_content_range);
            match range {
                Some((start, total)) if start == from => {
                    return Ok((resp.into_body().into_reader(), total, 0));
                }
                _ => {
                    drop(resp);
                    let (r, total, _) = self.open_blob(what, digest, 0)?;
                    return Ok((r, total, from));
                }
            }
        }
        let total = header(&resp, "content-length").and_then(|v| v.trim().parse().ok());
        Ok((resp.into_body().into_reader(), total, from))
    }

    /// Whether the repository has the blob (`HEAD`).
    pub fn blob_exists(&self, digest: &str) -> Result<bool> {
        let what = format!("@{digest}");
        reference::check_digest(digest).map_err(|why| self.err("", why))?;
        let resp = self.call(&what, Access::Pull, &|base, authz| {
            let mut req = self.agent.head(self.url(base, &format!("blobs/{digest}")));
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.call()
        })?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.err(&what, status_text(s))),
        }
    }

    /// Upload a blob of `size` bytes read from `data`: `POST` a session,
    /// then one monolithic `PUT ?digest=`. The registry verifies the digest.
    pub fn put_blob(&self, digest: &str, size: u64, data: &mut dyn Read) -> Result<()> {
        let what = format!("@{digest}");
        reference::check_digest(digest).map_err(|why| self.err("", why))?;
        // The POST carries no body, so it can be repeated for authentication;
        // the PUT's body can be read only once and goes with the auth the
        // POST settled.
        let resp = self.call(&what, Access::Push, &|base, authz| {
            let mut req = self.agent.post(self.url(base, "blobs/uploads/"));
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.send_empty()
        })?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.err(&what, format!("starting upload: {}", error_detail(resp))));
        }
        let location = header(&resp, "location")
            .ok_or_else(|| self.err(&what, "upload answer has no Location"))?
            .to_string();
        drop(resp);
        let base = self.base()?;
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            return Err(self.err(
                &what,
                format!("upload Location \"{location}\" is not a URL or absolute path"),
            ));
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", query_escape(digest)));
        let mut req = self
            .agent
            .put(&url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string());
        if let Some(a) = self.authorization(&what, Access::Push)? {
            req = req.header("Authorization", a);
        }
        let resp = req
            .send(ureq::SendBody::from_reader(data))
            .map_err(|e| self.net_err(&what, &e))?;
        match resp.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::UNAUTHORIZED => Err(self.err(
                &what,
                format!(
                    "authentication failed{}: {}",
                    self.as_user(),
                    error_detail(resp)
                ),
            )),
            _ => Err(self.err(&what, format!("uploading blob: {}", error_detail(resp)))),
        }
    }

    /// Store a manifest under a tag or its digest.
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<()> {
        self.check_reference(reference)?;
        let what = Self::at(reference);
        if is_digest(reference) && !digest_matches(reference, bytes)? {
            return Err(self.err(&what, "the manifest's bytes do not hash to that digest"));
        }
        let resp = self.call(&what, Access::Push, &|base, authz| {
            let mut req = self
                .agent
                .put(self.url(base, &format!("manifests/{reference}")))
                .header("Content-Type", media_type);
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.send(bytes)
        })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.err(&what, format!("storing manifest: {}", error_detail(resp))))
        }
    }
}

/// `Content-Range: bytes START-END/TOTAL` as (START, TOTAL if known).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// A blob's body that resumes where it broke off, and whose read errors
/// name the blob.
struct BlobBody<'a> {
    client: &'a Client,
    digest: String,
    /// `@digest`, for messages.
    what: String,
    /// The current answer's body; None after a failure, until reopened.
    inner: Option<ureq::BodyReader<'static>>,
    /// Bytes handed to the caller so far: where a resumed request starts.
    pos: u64,
    /// The blob's size, when an answer said it: a body that ends short of
    /// it was cut off, not finished.
    total: Option<u64>,
    /// Bytes of the current body still to drop (already handed out).
    skip: u64,
    /// Requests made for this blob, for the error line.
    tries: u32,
    /// Failures in a row without a byte of progress: these end the read.
    stalls: u32,
}

impl BlobBody<'_> {
    fn give_up(&self, why: impl std::fmt::Display) -> io::Error {
        let total = self.total.map_or(String::new(), |t| format!(" of {t}"));
        io::Error::other(format!(
            "{}{}: {why} (gave up after {} attempts, at byte {}{total})",
            self.client.name, self.what, self.tries, self.pos
        ))
    }

    /// After a failure: wait, then ask again from `pos`.
    fn resume(&mut self, why: String) -> io::Result<()> {
        self.inner = None;
        self.stalls += 1;
        if self.stalls >= self.client.retry.attempts {
            return Err(self.give_up(why));
        }
        std::thread::sleep(self.client.retry.backoff(self.stalls));
        self.tries += 1;
        // The request itself retries what may pass; its error is final.
        let (inner, total, skip) = self
            .client
            .open_blob(&self.what, &self.digest, self.pos)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.inner = Some(inner);
        self.total = total.or(self.total);
        self.skip = skip;
        Ok(())
    }
}

impl Read for BlobBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(inner) = self.inner.as_mut() else {
                return Err(self.give_up("no connection"));
            };
            match inner.read(buf) {
                Ok(0) if self.total.is_some_and(|t| self.pos < t) => {
                    let why = format!("connection closed at byte {}", self.pos);
                    self.resume(why)?;
                }
                Ok(0) => return Ok(0),
                Ok(n) => {
                    let k = usize::try_from(self.skip).unwrap_or(usize::MAX).min(n);
                    self.skip -= k as u64;
                    if k == n {
                        continue;
                    }
                    buf.copy_within(k..n, 0);
                    self.pos += (n - k) as u64;
                    self.stalls = 0;
                    return Ok(n - k);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.resume(e.to_string())?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.tld",
            "[::2]:5000",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn escapes_queries() {
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), Some((10, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let r = Retry {
            attempts: 5,
            base: Duration::from_millis(200),
        };
        let waits: Vec<u128> = (1..=7).map(|a| r.backoff(a).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable_status(StatusCode::NOT_IMPLEMENTED));
        assert!(!retryable_status(StatusCode::NOT_FOUND));
    }

    #[test]
    fn client_is_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Client>();
    }

    #[test]
    fn docker_hub_api_host() {
        let r = Reference::parse("busybox").unwrap();
        let c = Client::new(
            &r,
            &Options {
                creds: Some("u:p".into()),
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(c.api_host, "registry-1.docker.io");
        assert_eq!(c.name, "docker.io/library/busybox");
        assert!(!c.insecure);
    }
}
