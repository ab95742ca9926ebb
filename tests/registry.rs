//! The registry client against a real registry: Debian's docker-registry
//! (distribution 2.x) on a free loopback port with its own storage and
//! config, images pushed into it with skopeo, and for Bearer tokens a small
//! token server plus a reverse proxy in front of the registry that demands
//! them. Also TLS with a CA made here by openssl, and htpasswd auth. Needs
//! root to install missing tools (docker-registry, skopeo, apache2-utils,
//! openssl, busybox-static for hack/mkimage).

mod image_common;

use base64::Engine;
use brig::image::layout::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use brig::image::reference::Reference;
use brig::image::registry::{Client, Options};
use image_common::{
    brig_run, free_port, hoist_in, is_mounted, need_tools, run, scratch, sha256, Registry, Run,
    Scratch, Unmount,
};
use serde_json::{json, Value};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

const TOOLS: &[(&str, &str)] = &[
    ("docker-registry", "docker-registry"),
    ("skopeo", "skopeo"),
    ("htpasswd", "apache2-utils"),
    ("openssl", "openssl"),
    ("busybox", "busybox-static"),
];

/// Installs what is missing, once; a tool that cannot be had fails the
/// test, in CI or not: these tests are the registry client's only check.
fn tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        assert!(
            need_tools(TOOLS, "the registry tests"),
            "the registry tests cannot run without {TOOLS:?}"
        );
    });
}

/// A docker-registry process, killed when dropped (also on a panic).
#[derive(Default)]
struct Setup<'a> {
    htpasswd: Option<(&'a str, &'a str)>,
    tls: Option<&'a Pki>,
}

impl Registry {
    fn with(name: &str, setup: Setup) -> Registry {
        tools();
        Registry::start(name, |dir| {
            let mut cfg = String::new();
            if let Some(pki) = setup.tls {
                cfg += &format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    pki.cert.display(),
                    pki.key.display()
                );
            }
            if let Some((user, pass)) = setup.htpasswd {
                let line = run(Command::new("htpasswd").args(["-Bbn", user, pass]));
                let file = dir.join("htpasswd");
                fs::write(&file, line).expect("write htpasswd");
                cfg += &format!(
                    "auth:\n  htpasswd:\n    realm: brig-test\n    path: {}\n",
                    file.display()
                );
            }
            cfg
        })
    }

    /// skopeo copy SRC into this registry (plain HTTP or unverified TLS).
    fn push(&self, src: &str, dest: &str, extra: &[&str]) {
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra)
            .arg(src)
            .arg(format!("docker://{}/{dest}", self.host())));
    }

    fn inspect_raw(&self, image: &str, extra: &[&str]) -> Vec<u8> {
        run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .args(extra)
            .arg(format!("docker://{}/{image}", self.host())))
    }
}

/// The busybox OCI archive of hack/mkimage, made once per test run.
fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        tools();
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("registry-busybox.tar");
        run(
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/mkimage"))
                .arg(&out)
                .arg("busybox:latest"),
        );
        out
    })
}

fn oci_archive() -> String {
    format!("oci-archive:{}", busybox_tar().display())
}

fn client(image: &str, opts: &Options) -> Client {
    let r = Reference::parse(image).expect("parse reference");
    Client::new(&r, opts).expect("new client")
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).expect("read blob");
    v
}

#[track_caller]
fn assert_err<T>(r: brig::Result<T>, wants: &[&str]) -> String {
    let msg = match r {
        Ok(_) => panic!("expected an error containing {wants:?}"),
        Err(e) => e.to_string(),
    };
    assert!(!msg.contains('\n'), "not one line: {msg}");
    for w in wants {
        assert!(msg.contains(w), "{msg:?} should contain {w:?}");
    }
    msg
}

#[test]
fn pull_by_tag_and_digest() {
    let reg = Registry::with("pull", Setup::default());
    reg.push(&oci_archive(), "busybox:latest", &[]);
    let raw = reg.inspect_raw("busybox:latest", &[]);
    let c = client(&format!("{}/busybox", reg.host()), &Options::default());

    let (bytes, media_type, digest) = c.manifest("latest").expect("manifest by tag");
    assert_eq!(bytes, raw);
    assert_eq!(media_type, OCI_MANIFEST);
    assert_eq!(digest, sha256(&raw));

    let (again, media_type2, digest2) = c.manifest(&digest).expect("manifest by digest");
    assert_eq!(
        (again, media_type2, &digest2),
        (raw.clone(), media_type, &digest)
    );

    // The config and the layer, each from its own thread through one client.
    let m: Value = serde_json::from_slice(&raw).unwrap();
    let mut descs = vec![m["config"].clone()];
    descs.extend(m["layers"].as_array().unwrap().iter().cloned());
    let c = Arc::new(c);
    let handles: Vec<_> = descs
        .into_iter()
        .flat_map(|d| [d.clone(), d])
        .map(|d| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let digest = d["digest"].as_str().unwrap();
                let blob = read_all(c.blob(digest).expect("blob"));
                assert_eq!(sha256(&blob), digest);
                assert_eq!(blob.len() as u64, d["size"].as_u64().unwrap());
                assert!(c.blob_exists(digest).expect("HEAD blob"));
            })
        })
        .collect();
    for h in handles {
        h.join().expect("blob thread");
    }

    // What goes wrong says what and where, in one line.
    let name = format!("{}/busybox", reg.host());
    assert_err(c.manifest("nope"), &[&name, ":nope", "MANIFEST_UNKNOWN"]);
    let zero = format!("sha256:{}", "0".repeat(64));
    assert_err(c.manifest(&zero), &[&name, &zero, "not found"]);
    assert_err(c.blob(&zero).map(|_| ()), &[&name, &zero, "BLOB_UNKNOWN"]);
    assert!(!c.blob_exists(&zero).expect("HEAD missing blob"));
    assert_err(c.manifest("bad tag"), &[&name, "invalid tag"]);
    assert_err(c.blob("sha256:abc").map(|_| ()), &[&name, "malformed"]);
    let other = client(&format!("{}/nothing/here", reg.host()), &Options::default());
    assert_err(
        other.manifest("latest"),
        &["nothing/here:latest", "not found"],
    );
}

#[test]
fn unreachable_registry() {
    let port = free_port();
    let c = client(&format!("127.0.0.1:{port}/busybox"), &Options::default());
    let msg = assert_err(
        c.manifest("latest"),
        &[&format!("127.0.0.1:{port}"), "cannot reach"],
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    // Not insecure: HTTPS only, and the error still names the host.
    let pki = Pki::make("unreachable");
    let c = client(
        &format!("127.0.0.1:{port}/busybox"),
        &Options {
            ca_file: Some(pki.ca.clone()),
            ..Options::default()
        },
    );
    assert_err(
        c.blob(&format!("sha256:{}", "1".repeat(64))).map(|_| ()),
        &[&format!("127.0.0.1:{port}")],
    );
}

/// A multi-arch OCI index (amd64 + arm64 manifests over the busybox layer)
/// as an OCI layout, its index named `multi`; returns the index's bytes.
fn multi_arch_layout(dir: &Path) -> Vec<u8> {
    let mut ar = tar::Archive::new(fs::File::open(busybox_tar()).unwrap());
    ar.unpack(dir).unwrap();
    let blob = |d: &str| fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap();
    let put = |b: &[u8]| {
        let d = sha256(b);
        fs::write(dir.join("blobs/sha256").join(&d[7..]), b).unwrap();
        json!({"digest": d, "size": b.len()})
    };
    let top: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mdesc = &top["manifests"][0];
    let manifest: Value = serde_json::from_slice(&blob(mdesc["digest"].as_str().unwrap())).unwrap();
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut config: Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        config["architecture"] = json!(arch);
        let cdesc = put(&serde_json::to_vec(&config).unwrap());
        let mut m = manifest.clone();
        m["config"]["digest"] = cdesc["digest"].clone();
        m["config"]["size"] = cdesc["size"].clone();
        let mut d = put(&serde_json::to_vec(&m).unwrap());
        d["mediaType"] = json!(OCI_MANIFEST);
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        entries.push(d);
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries
    }))
    .unwrap();
    let mut idesc = put(&index);
    idesc["mediaType"] = json!(OCI_INDEX);
    idesc["annotations"] = json!({"org.opencontainers.image.ref.name": "multi"});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [idesc]})).unwrap(),
    )
    .unwrap();
    let _ = fs::remove_file(dir.join("manifest.json"));
    index
}

#[test]
fn media_types_come_back_intact() {
    let reg = Registry::with("types", Setup::default());
    let work = scratch("types-layout");
    let index = multi_arch_layout(&work);
    let src = format!("oci:{}:multi", work.display());
    reg.push(&src, "multi:oci", &["--all"]);
    reg.push(&src, "multi:docker", &["--all", "--format", "v2s2"]);
    reg.push(&oci_archive(), "busybox:v2s2", &["--format", "v2s2"]);

    let c = client(&format!("{}/multi", reg.host()), &Options::default());
    let (bytes, mt, digest) = c.manifest("oci").expect("OCI index");
    assert_eq!(mt, OCI_INDEX);
    assert_eq!(bytes, index, "the index is stored and served byte for byte");
    assert_eq!(digest, sha256(&index));
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let archs: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    // Each platform's manifest by its digest.
    for m in v["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        let (b, mt, got) = c.manifest(d).expect("platform manifest");
        assert_eq!((mt.as_str(), got.as_str()), (OCI_MANIFEST, d));
        assert_eq!(b.len() as u64, m["size"].as_u64().unwrap());
    }

    let (bytes, mt, digest) = c.manifest("docker").expect("Docker manifest list");
    assert_eq!(mt, DOCKER_LIST);
    assert_eq!(bytes, reg.inspect_raw("multi:docker", &[]));
    assert_eq!(digest, sha256(&bytes));

    let c = client(&format!("{}/busybox", reg.host()), &Options::default());
    let (bytes, mt, digest) = c.manifest("v2s2").expect("Docker schema 2 manifest");
    assert_eq!(mt, DOCKER_MANIFEST);
    assert_eq!(bytes, reg.inspect_raw("busybox:v2s2", &[]));
    assert_eq!(digest, sha256(&bytes));
    let _ = fs::remove_dir_all(&work);
}

/// A fresh one-layer image: (config, layer, manifest) bytes.
fn small_image(text: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", text.as_bytes()).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(&layer), "size": layer.len()}]
    }))
    .unwrap();
    (config, layer, manifest)
}

fn push_image(c: &Client, tag: &str, text: &str) -> (Vec<u8>, String) {
    let (config, layer, manifest) = small_image(text);
    for blob in [&layer, &config] {
        let d = sha256(blob);
        assert!(!c.blob_exists(&d).expect("HEAD before push"));
        c.put_blob(&d, blob.len() as u64, &mut blob.as_slice())
            .expect("put_blob");
        assert!(c.blob_exists(&d).expect("HEAD after push"));
    }
    c.put_manifest(tag, OCI_MANIFEST, &manifest)
        .expect("put_manifest");
    let d = sha256(&manifest);
    (manifest, d)
}

#[test]
fn push_round_trip() {
    let reg = Registry::with("push", Setup::default());
    let c = client(&format!("{}/fresh/image", reg.host()), &Options::default());
    let (manifest, digest) = push_image(&c, "v1", "hello from put_blob\n");

    let seen: Value = serde_json::from_slice(&run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/fresh/image:v1", reg.host()),
    ])))
    .unwrap();
    assert_eq!(seen["Digest"], json!(digest));
    assert_eq!(seen["Architecture"], json!("amd64"));
    assert_eq!(reg.inspect_raw("fresh/image:v1", &[]), manifest);
    assert_eq!(c.manifest("v1").expect("pull back").0, manifest);

    // By digest, and a digest the bytes do not have.
    c.put_manifest(&digest, OCI_MANIFEST, &manifest)
        .expect("put by digest");
    let zero = format!("sha256:{}", "0".repeat(64));
    assert_err(
        c.put_manifest(&zero, OCI_MANIFEST, &manifest),
        &["fresh/image", &zero],
    );
    // A blob whose bytes are not its digest: the registry refuses it.
    let msg = assert_err(
        c.put_blob(&zero, 5, &mut &b"hello"[..]),
        &["fresh/image", &zero],
    );
    assert!(
        msg.contains("DIGEST_INVALID") || msg.contains("digest"),
        "{msg}"
    );
    // A manifest naming blobs the registry lacks.
    let (_, _, orphan) = small_image("never uploaded");
    assert_err(
        c.put_manifest("orphan", OCI_MANIFEST, &orphan),
        &["fresh/image:orphan", "BLOB_UNKNOWN"],
    );
}

/// A server answering every request with `respond(request head)`.
fn serve(handler: impl Fn(&Req, &mut TcpStream) + Send + Sync + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let h = Arc::clone(&handler);
            thread::spawn(move || {
                if let Some(req) = read_request(&mut s) {
                    h(&req, &mut s);
                }
            });
        }
    });
    port
}

struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(s: &mut TcpStream) -> Option<Req> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut req = Req {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    assert!(
        req.header("transfer-encoding").is_none(),
        "chunked bodies not handled here"
    );
    let len: usize = req
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    req.body = vec![0; len];
    r.read_exact(&mut req.body).ok()?;
    Some(req)
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "\r\n";
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(body);
}

#[test]
fn manifest_digest_is_verified() {
    // A registry that answers every manifest with the same bytes, whatever
    // digest was asked for.
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let port = serve(move |_req, s| {
        respond(s, "200 OK", &[("Content-Type", OCI_MANIFEST)], body);
    });
    let c = client(&format!("127.0.0.1:{port}/liar"), &Options::default());
    let (_, mt, got) = c.manifest("latest").expect("by tag nothing to check");
    assert_eq!(
        (mt.as_str(), got.as_str()),
        (OCI_MANIFEST, sha256(body).as_str())
    );
    let asked = format!("sha256:{}", "ab".repeat(32));
    assert_err(c.manifest(&asked), &["liar", &asked, &sha256(body)]);
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn basic_auth() {
    let reg = Registry::with(
        "basic",
        Setup {
            htpasswd: Some(("user", "pass")),
            ..Setup::default()
        },
    );
    reg.push(
        &oci_archive(),
        "busybox:latest",
        &["--dest-creds", "user:pass"],
    );
    let raw = reg.inspect_raw("busybox:latest", &["--creds", "user:pass"]);
    let image = format!("{}/busybox", reg.host());

    let c = client(
        &image,
        &Options {
            creds: Some("user:pass".into()),
            ..Options::default()
        },
    );
    assert_eq!(c.manifest("latest").expect("with --creds").0, raw);

    let work = scratch("basic-authfile");
    let auth_file = work.join("auth.json");
    fs::write(
        &auth_file,
        json!({"auths": {reg.host(): {"auth": b64("user:pass")}}}).to_string(),
    )
    .unwrap();
    let c = client(
        &image,
        &Options {
            auth_file: Some(auth_file.clone()),
            ..Options::default()
        },
    );
    let (bytes, _, digest) = c.manifest("latest").expect("with an auth file");
    assert_eq!(bytes, raw);
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(sha256(&read_all(c.blob(layer).expect("blob"))), layer);
    assert_eq!(c.manifest(&digest).expect("by digest").0, raw);
    // Pushing with Basic auth too.
    let pusher = client(
        &format!("{}/pushed", reg.host()),
        &Options {
            auth_file: Some(auth_file),
            ..Options::default()
        },
    );
    push_image(&pusher, "v1", "basic push\n");

    let wrong = client(
        &image,
        &Options {
            creds: Some("user:wrong".into()),
            ..Options::default()
        },
    );
    assert_err(
        wrong.manifest("latest"),
        &[&image, "authentication failed", "401"],
    );
    // A named auth file that is missing is an error, not anonymous access.
    let r = Reference::parse(&image).unwrap();
    let missing = Client::new(
        &r,
        &Options {
            auth_file: Some(work.join("none.json")),
            ..Options::default()
        },
    );
    assert_err(missing, &["none.json"]);
    let empty = work.join("empty.json");
    fs::write(&empty, "{}").unwrap();
    let anon = client(
        &image,
        &Options {
            auth_file: Some(empty),
            ..Options::default()
        },
    );
    assert_err(
        anon.manifest("latest"),
        &[&image, "authentication required"],
    );
    let _ = fs::remove_dir_all(&work);
}

const PULL_TOKEN: &str = "tok-pull";
const PUSH_TOKEN: &str = "tok-push";

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A token server: anonymous or `user:pass` callers get a token for the
/// scope they ask for; wrong credentials get 401. Counts what it issues.
fn token_server(issued: Arc<Mutex<Vec<String>>>) -> u16 {
    serve(move |req, s| {
        let query = req.target.split_once('?').map_or("", |(_, q)| q);
        let param = |k: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(n, _)| *n == k)
                .map(|(_, v)| percent_decode(v))
        };
        if let Some(a) = req.header("authorization") {
            if a != format!("Basic {}", b64("user:pass")) {
                return respond(
                    s,
                    "401 Unauthorized",
                    &[],
                    br#"{"details":"bad credentials"}"#,
                );
            }
        }
        let token = match (param("service").as_deref(), param("scope").as_deref()) {
            (Some("test"), Some("repository:busybox:pull")) => PULL_TOKEN,
            (Some("test"), Some("repository:busybox:pull,push")) => PUSH_TOKEN,
            other => {
                let msg = format!("unexpected service/scope {other:?}");
                return respond(s, "403 Forbidden", &[], msg.as_bytes());
            }
        };
        issued.lock().unwrap().push(token.to_string());
        // Half answer in Docker's field, half in OAuth2's.
        let field = if token == PULL_TOKEN {
            "token"
        } else {
            "access_token"
        };
        respond(
            s,
            "200 OK",
            &[("Content-Type", "application/json")],
            json!({field: token}).to_string().as_bytes(),
        );
    })
}

/// A reverse proxy in front of `upstream` that wants a pull token for
/// reads and a push token for writes.
fn bearer_proxy(upstream: u16, token_port: u16) -> u16 {
    serve(move |req, s| {
        let write = !matches!(req.method.as_str(), "GET" | "HEAD");
        let got = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "));
        let ok = match got {
            Some(PUSH_TOKEN) => true,
            Some(PULL_TOKEN) => !write,
            _ => false,
        };
        if !ok {
            let scope = if write { "pull,push" } else { "pull" };
            let challenge = format!(
                "Bearer realm=\"http://127.0.0.1:{token_port}/token\",service=\"test\",scope=\"repository:busybox:{scope}\""
            );
            return respond(
                s,
                "401 Unauthorized",
                &[
                    ("WWW-Authenticate", &challenge),
                    ("Content-Type", "application/json"),
                ],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}"#,
            );
        }
        let mut up = TcpStream::connect(("127.0.0.1", upstream)).expect("connect upstream");
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
        for (k, v) in &req.headers {
            if !k.eq_ignore_ascii_case("connection") {
                head += &format!("{k}: {v}\r\n");
            }
        }
        head += "Connection: close\r\n\r\n";
        up.write_all(head.as_bytes()).unwrap();
        up.write_all(&req.body).unwrap();
        let _ = std::io::copy(&mut up, s);
    })
}

#[test]
fn bearer_tokens() {
    let reg = Registry::with("bearer", Setup::default());
    reg.push(&oci_archive(), "busybox:latest", &[]);
    let raw = reg.inspect_raw("busybox:latest", &[]);
    let issued = Arc::new(Mutex::new(Vec::new()));
    let tp = token_server(Arc::clone(&issued));
    let pp = bearer_proxy(reg.port, tp);
    let image = format!("127.0.0.1:{pp}/busybox");

    let c = client(&image, &Options::default());
    let (bytes, _, digest) = c.manifest("latest").expect("manifest through the proxy");
    assert_eq!(bytes, raw);
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    for d in [&m["config"], &m["layers"][0]] {
        let d = d["digest"].as_str().unwrap();
        assert_eq!(
            sha256(&read_all(c.blob(d).expect("blob through the proxy"))),
            d
        );
    }
    assert_eq!(c.manifest(&digest).expect("by digest").0, raw);
    assert_eq!(*issued.lock().unwrap(), [PULL_TOKEN], "one token, cached");

    // Writes need a token with push scope, fetched once, with credentials.
    let c = client(
        &image,
        &Options {
            creds: Some("user:pass".into()),
            ..Options::default()
        },
    );
    let (manifest, _) = push_image(&c, "pushed", "through the bearer proxy\n");
    assert_eq!(reg.inspect_raw("busybox:pushed", &[]), manifest);
    assert_eq!(
        *issued.lock().unwrap(),
        [PULL_TOKEN, PULL_TOKEN, PUSH_TOKEN]
    );

    let wrong = client(
        &image,
        &Options {
            creds: Some("user:wrong".into()),
            ..Options::default()
        },
    );
    assert_err(
        wrong.manifest("latest"),
        &[&image, "authentication failed", "token server", "401"],
    );
    let other = client(&format!("127.0.0.1:{pp}/other"), &Options::default());
    assert_err(other.manifest("latest"), &["other", "403"]);
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
struct Pki {
    /// Holds the files below; removed with the Pki.
    _dir: Scratch,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn make(name: &str) -> Pki {
        tools();
        let d = scratch(&format!("pki-{name}"));
        let p = |f: &str| d.join(f);
        let ossl = |args: &[&str]| {
            run(Command::new("openssl").args(args).current_dir(&d));
        };
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=brig test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        ossl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        fs::write(
            p("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        ossl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ]);
        Pki {
            ca: p("ca.crt"),
            cert: p("server.crt"),
            key: p("server.key"),
            _dir: d,
        }
    }
}

#[test]
fn tls() {
    let pki = Pki::make("tls");
    let reg = Registry::with(
        "tls",
        Setup {
            tls: Some(&pki),
            ..Setup::default()
        },
    );
    reg.push(&oci_archive(), "busybox:latest", &[]);
    let raw = reg.inspect_raw("busybox:latest", &[]);
    let image = format!("{}/busybox", reg.host());

    // Verified against the CA named: no fallback to HTTP is possible here.
    let c = client(
        &image,
        &Options {
            ca_file: Some(pki.ca.clone()),
            ..Options::default()
        },
    );
    let (bytes, _, _) = c.manifest("latest").expect("verified TLS");
    assert_eq!(bytes, raw);
    let m: Value = serde_json::from_slice(&bytes).unwrap();
    let d = m["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(sha256(&read_all(c.blob(d).expect("blob over TLS"))), d);

    // Another CA does not vouch for this server.
    let other = Pki::make("other");
    let c = client(
        &image,
        &Options {
            ca_file: Some(other.ca.clone()),
            ..Options::default()
        },
    );
    let msg = assert_err(c.manifest("latest"), &[&reg.host(), "cannot reach"]);
    assert!(
        msg.contains("certificate") || msg.contains("UnknownIssuer"),
        "{msg}"
    );
    // Insecure (loopback without a CA, or asked for): TLS unverified.
    for opts in [
        Options::default(),
        Options {
            insecure: true,
            ca_file: Some(other.ca.clone()),
            ..Options::default()
        },
    ] {
        assert_eq!(
            client(&image, &opts)
                .manifest("latest")
                .expect("unverified TLS")
                .0,
            raw
        );
    }
    let bad = other.ca.with_file_name("garbage.pem");
    fs::write(&bad, "not a certificate").unwrap();
    let r = Reference::parse(&image).unwrap();
    assert_err(
        Client::new(
            &r,
            &Options {
                ca_file: Some(bad),
                ..Options::default()
            },
        ),
        &["garbage.pem", "certificate"],
    );
}

// --- hoist's commands against the registry --------------------------------

/// What a failed pull must leave: an error of one line naming `what`, and
/// a store with no image, no blob and nothing in tmp/.
#[track_caller]
fn assert_pull_failed_cleanly(store: &Path, r: &Run, what: &str) {
    assert!(!r.ok, "pull succeeded: {}", r.stdout);
    let last: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("hoist:"))
        .collect();
    assert_eq!(last.len(), 1, "want one error line, got: {}", r.stderr);
    assert!(
        last[0].contains(what),
        "error does not name {what}: {}",
        r.stderr
    );
    let count = |d: &str| fs::read_dir(store.join(d)).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count("blobs/sha256"), 0, "blobs left behind");
    assert_eq!(count("tmp"), 0, "tmp/ left behind");
    assert_eq!(hoist_in(store, &["images", "-q"]).stdout, "", "image named");
}

/// The busybox image with Cmd `cmd`, as an OCI layout at `dir` tagged "cmd".
fn layout_with_cmd(dir: &Path, cmd: &[&str]) {
    let mut ar = tar::Archive::new(fs::File::open(busybox_tar()).unwrap());
    ar.unpack(dir).unwrap();
    let blob = |d: &str| fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap();
    let put = |b: &[u8]| {
        let d = sha256(b);
        fs::write(dir.join("blobs/sha256").join(&d[7..]), b).unwrap();
        (d, b.len())
    };
    let top: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut m: Value =
        serde_json::from_slice(&blob(top["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let mut config: Value =
        serde_json::from_slice(&blob(m["config"]["digest"].as_str().unwrap())).unwrap();
    config["config"]["Cmd"] = json!(cmd);
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    m["config"]["digest"] = json!(cd);
    m["config"]["size"] = json!(cs);
    let (md, ms) = put(&serde_json::to_vec(&m).unwrap());
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "cmd"}
    }]});
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    let _ = fs::remove_file(dir.join("manifest.json"));
}

#[test]
fn hoist_pulls_unpacks_and_brig_runs_the_image() {
    let reg = Registry::with("hoist-e2e", Setup::default());
    let work = scratch("hoist-e2e");
    let hello = work.join("hello");
    layout_with_cmd(&hello, &["sh", "-c", "echo hello from the image"]);
    reg.push(&format!("oci:{}:cmd", hello.display()), "hello:1", &[]);
    let multi = work.join("multi");
    multi_arch_layout(&multi);
    reg.push(
        &format!("oci:{}:multi", multi.display()),
        "multi:1",
        &["--all"],
    );

    let store = work.join("store");
    let image = format!("{}/hello:1", reg.host());
    let r = hoist_in(&store, &["pull", &format!("docker://{image}")]);
    assert!(r.ok, "pull: {}", r.stderr);
    assert_eq!(r.stdout.trim(), image);
    // Not a terminal: plain progress lines, one per blob start and end.
    assert!(
        r.stderr.contains("fetching") && r.stderr.contains("done"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains('\x1b'),
        "escape codes on a pipe: {}",
        r.stderr
    );
    assert_eq!(
        hoist_in(&store, &["images", "-q"]).stdout,
        format!("{image}\n")
    );
    // Again: nothing to fetch.
    let r = hoist_in(&store, &["pull", &format!("docker://{image}")]);
    assert!(r.ok && r.stderr.contains("already present"), "{}", r.stderr);

    // A plain reference unpacks from the store; brig runs what Cmd says.
    let state = work.join("state");
    let b1 = work.join("b1");
    let r = hoist_in(&store, &["unpack", &image, b1.to_str().unwrap()]);
    assert!(r.ok, "unpack: {}", r.stderr);
    assert_eq!(
        brig_run(&state, &b1, &format!("hoist-reg-{}", std::process::id())),
        "hello from the image\n"
    );
    // docker:// with --overlay: pulled (already there) and mounted.
    let b2 = work.join("b2");
    let _u = Unmount(b2.clone());
    let r = hoist_in(
        &store,
        &[
            "unpack",
            "--overlay",
            &format!("docker://{image}"),
            b2.to_str().unwrap(),
        ],
    );
    assert!(r.ok, "unpack --overlay: {}", r.stderr);
    assert!(is_mounted(&b2.join("rootfs")));
    assert_eq!(
        brig_run(&state, &b2, &format!("hoist-reg-ov-{}", std::process::id())),
        "hello from the image\n"
    );
    let r = hoist_in(&store, &["unmount", b2.to_str().unwrap()]);
    assert!(r.ok, "unmount: {}", r.stderr);

    // An index: the host's platform by default, another with --platform.
    let m = format!("{}/multi:1", reg.host());
    let arch = |store: &Path| -> Value {
        let r = hoist_in(store, &["inspect", &m]);
        assert!(r.ok, "inspect: {}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).expect("inspect JSON");
        v["config"]["architecture"].clone()
    };
    let r = hoist_in(&store, &["pull", "-q", &format!("docker://{m}")]);
    assert!(r.ok, "pull index: {}", r.stderr);
    assert_eq!(r.stderr, "", "-q printed progress");
    assert_eq!(arch(&store), json!("amd64"));
    let r = hoist_in(
        &store,
        &[
            "pull",
            "--platform",
            "linux/arm64",
            &format!("docker://{m}"),
        ],
    );
    assert!(r.ok, "pull arm64: {}", r.stderr);
    assert_eq!(arch(&store), json!("arm64"));
    let r = hoist_in(
        &store,
        &[
            "pull",
            "--platform",
            "linux/s390x",
            &format!("docker://{m}"),
        ],
    );
    assert!(!r.ok && r.stderr.contains("linux/s390x"), "{}", r.stderr);

    // rmi of everything empties the store.
    let r = hoist_in(&store, &["rmi", &image, &m]);
    assert!(r.ok, "rmi: {}", r.stderr);
    assert_eq!(fs::read_dir(store.join("blobs/sha256")).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn hoist_pull_failures_leave_nothing() {
    let reg = Registry::with("hoist-fail", Setup::default());
    reg.push(&oci_archive(), "busybox:latest", &[]);
    let work = scratch("hoist-fail");
    let store = work.join("store");

    let missing = format!("docker://{}/busybox:nope", reg.host());
    let r = hoist_in(&store, &["pull", &missing]);
    assert_pull_failed_cleanly(&store, &r, "MANIFEST_UNKNOWN");

    let port = free_port();
    let r = hoist_in(&store, &["pull", &format!("docker://127.0.0.1:{port}/x:1")]);
    assert_pull_failed_cleanly(&store, &r, &format!("127.0.0.1:{port}"));

    // A layer corrupted in the registry's storage: its digest gives it away.
    let raw = reg.inspect_raw("busybox:latest", &[]);
    let m: Value = serde_json::from_slice(&raw).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let hex = &layer[7..];
    let data = reg
        .dir
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = fs::read(&data).expect("the registry's copy of the layer");
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    fs::write(&data, &bytes).unwrap();
    let r = hoist_in(
        &store,
        &["pull", &format!("docker://{}/busybox:latest", reg.host())],
    );
    assert_pull_failed_cleanly(&store, &r, &layer);
    // The bundle is not made either.
    let b = work.join("bundle");
    let r = hoist_in(
        &store,
        &[
            "unpack",
            &format!("docker://{}/busybox:latest", reg.host()),
            b.to_str().unwrap(),
        ],
    );
    assert!(!r.ok && r.stderr.contains(&layer), "{}", r.stderr);
    assert!(!b.exists(), "a partial bundle");
    let names: Vec<String> = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["store"], "left next to the bundle: {names:?}");
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn hoist_pull_with_credentials() {
    let reg = Registry::with(
        "hoist-auth",
        Setup {
            htpasswd: Some(("user", "pass")),
            ..Setup::default()
        },
    );
    reg.push(
        &oci_archive(),
        "busybox:latest",
        &["--dest-creds", "user:pass"],
    );
    let work = scratch("hoist-auth");
    let store = work.join("store");
    let src = format!("docker://{}/busybox:latest", reg.host());

    let r = hoist_in(&store, &["pull", &src]);
    assert_pull_failed_cleanly(&store, &r, "authentication");
    let r = hoist_in(&store, &["pull", "--creds", "user:wrong", &src]);
    assert_pull_failed_cleanly(&store, &r, "authentication failed");

    let r = hoist_in(&store, &["pull", "--creds", "user:pass", &src]);
    assert!(r.ok, "with --creds: {}", r.stderr);
    let r = hoist_in(&store, &["rmi", &src[9..]]);
    assert!(r.ok, "rmi: {}", r.stderr);

    let authfile = work.join("auth.json");
    fs::write(
        &authfile,
        json!({"auths": {reg.host(): {"auth": b64("user:pass")}}}).to_string(),
    )
    .unwrap();
    let r = hoist_in(
        &store,
        &["pull", "--authfile", authfile.to_str().unwrap(), &src],
    );
    assert!(r.ok, "with --authfile: {}", r.stderr);
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn hoist_push_of_a_built_image_round_trips() {
    let reg = Registry::with("hoist-push", Setup::default());
    let work = scratch("hoist-push");
    let store = work.join("store");
    let r = hoist_in(&store, &["pull", "-q", &oci_archive()]);
    assert!(r.ok, "import: {}", r.stderr);
    let ctx = work.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:latest\nRUN echo pushed > /p\nCMD [\"cat\", \"/p\"]\n",
    )
    .unwrap();
    let r = hoist_in(
        &store,
        &["build", "-q", "-t", "x/pushed:1", ctx.to_str().unwrap()],
    );
    assert!(r.ok, "build: {}{}", r.stdout, r.stderr);
    let dest = format!("docker://{}/pushed:1", reg.host());
    let r = hoist_in(&store, &["push", "-q", "--insecure", "x/pushed:1", &dest]);
    assert!(r.ok, "push: {}", r.stderr);
    let digest = r.stdout.trim().to_string();
    assert!(digest.starts_with("sha256:"), "{}", r.stdout);
    let raw = reg.inspect_raw("pushed:1", &[]);
    assert_eq!(sha256(&raw), digest, "the registry has other bytes");
    // Pulled into a fresh store, unpacked and run.
    let store2 = work.join("store2");
    let b = work.join("bundle");
    let r = hoist_in(&store2, &["unpack", &dest, b.to_str().unwrap()]);
    assert!(r.ok, "unpack: {}", r.stderr);
    assert_eq!(
        brig_run(
            &work.join("state"),
            &b,
            &format!("push-{}", std::process::id())
        ),
        "pushed\n"
    );
}
