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
//! Every error is one line naming the registry and repository, and the tag
//! or digest when there is one.

use super::auth::{self, Challenge, Scheme};
use super::layout::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use super::reference::{self, Reference};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256, Sha512};
use std::collections::HashMap;
use std::io::Read;
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
            match self.agent.get(format!("{b}/v2/")).call() {
                Ok(resp) => {
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
                Err(e) => failures.push(format!("{scheme}: {}", net_text(&e))),
            }
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
        let mut req = self.agent.get(&url);
        if let Some((u, p)) = &self.creds {
            req = req.header("Authorization", auth::basic(u, p));
        }
        let resp = req.call().map_err(|e| {
            self.err(
                what,
                format!("cannot reach token server {realm}: {}", net_text(&e)),
            )
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
    /// Authorization header), answering one authentication challenge.
    fn call(&self, what: &str, access: Access, send: &SendFn<'_>) -> Result<Response<Body>> {
        let base = self.base()?;
        let mut authz = self.authorization(what, access)?;
        let mut retried = false;
        loop {
            let resp = send(&base, authz.as_deref()).map_err(|e| self.net_err(what, &e))?;
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
                return Err(self.err(what, format!("{why}: {}", error_detail(resp))));
            }
            {
                let mut st = lock(&self.auth);
                st.challenge = challenge;
                st.tokens.remove(&access);
            }
            retried = true;
            authz = self.authorization(what, access)?;
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
        let bytes = resp
            .into_body()
            .into_with_config()
            .limit(MANIFEST_MAX)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => self.err(
                    &what,
                    format!("manifest larger than {} MiB", MANIFEST_MAX >> 20),
                ),
                e => self.err(&what, format!("reading manifest: {}", net_text(&e))),
            })?;
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
    pub fn blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        let what = format!("@{digest}");
        reference::check_digest(digest).map_err(|why| self.err("", why))?;
        let resp = self.call(&what, Access::Pull, &|base, authz| {
            let mut req = self.agent.get(self.url(base, &format!("blobs/{digest}")));
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.call()
        })?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(self.err(&what, format!("blob not found: {}", error_detail(resp))));
        }
        if !status.is_success() {
            return Err(self.err(&what, error_detail(resp)));
        }
        let name = format!("{}{what}", self.name);
        Ok(Box::new(BlobBody {
            inner: resp.into_body().into_reader(),
            name,
        }))
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

/// A blob's body whose read errors name the blob.
struct BlobBody {
    inner: ureq::BodyReader<'static>,
    name: String,
}

impl Read for BlobBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.name)))
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
