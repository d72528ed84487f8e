//! A real RFC 3161 Time Stamping Authority on loopback: `openssl ts -reply` behind a tiny HTTP
//! wrapper (the fake HTTP server of `fake_http`). Each TSA has its own root CA (EC P-256) and
//! an RSA-2048 TSA certificate with the critical `timeStamping` extended key usage, issued by
//! `openssl ca`; an expired TSA's certificate was valid only in 2020.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sv0_tests::TempDir;

use crate::fake_http::{Reply, fake_server_with};

/// The policy the test TSA stamps under by default, and one more it accepts.
pub const POLICY: &str = "1.3.6.1.4.1.55555.1.1";
pub const OTHER_POLICY: &str = "1.3.6.1.4.1.55555.1.2";

/// `openssl req` arguments for a new EC P-256 key without a passphrase.
const EC_P256_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/// A running TSA.
pub struct Tsa {
    pub dir: TempDir,
    /// Its URL (POST `application/timestamp-query`).
    pub url: String,
    /// Answers 503 while set.
    pub down: Arc<AtomicBool>,
    /// Requests answered with a token.
    pub stamped: Arc<AtomicUsize>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Tsa {
    /// A TSA whose certificate is valid now.
    pub fn start() -> Tsa {
        Tsa::with_validity(None)
    }

    /// A TSA whose certificate expired on 2020-12-31.
    pub fn expired() -> Tsa {
        Tsa::with_validity(Some(("20200101000000Z", "20201231000000Z")))
    }

    fn with_validity(dates: Option<(&str, &str)>) -> Tsa {
        let dir = TempDir::new();
        let d = dir.path().to_path_buf();
        let config = format!(
            r#"
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = anything
x509_extensions = tsa_ext
unique_subject = no
default_days = 365
[ anything ]
commonName = supplied
[ tsa_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {d}
serial = {d}/tsaserial
crypto_device = builtin
signer_cert = {d}/tsa.pem
certs = {d}/ca.pem
signer_key = {d}/tsa.key
signer_digest = sha256
default_policy = {POLICY}
other_policies = {OTHER_POLICY}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"#,
            d = d.display()
        );
        std::fs::write(d.join("tsa.cnf"), config).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(d.join("tsaserial"), "01\n").unwrap();
        openssl(
            &d,
            &[
                &["req", "-x509"][..],
                &EC_P256_KEY,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=SV0 Test TSA Root"],
                &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        openssl(
            &d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "tsa.key",
                "-out",
                "tsa.csr",
                "-subj",
                "/CN=SV0 Test TSA",
            ],
        );
        let mut sign = vec![
            "ca", "-batch", "-config", "tsa.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "tsa.csr", "-out",
            "tsa.pem", "-notext",
        ];
        if let Some((from, to)) = dates {
            sign.extend(["-startdate", from, "-enddate", to]);
        }
        openssl(&d, &sign);
        let down = Arc::new(AtomicBool::new(false));
        let stamped = Arc::new(AtomicUsize::new(0));
        let (serve_dir, serve_down, serve_stamped) = (d.clone(), down.clone(), stamped.clone());
        let url = fake_server_with(move |received| {
            if serve_down.load(Ordering::SeqCst) {
                return Reply::json("503 Service Unavailable", "{}");
            }
            if received.method != "POST" || received.header("content-type") != Some("application/timestamp-query") {
                return Reply::json("400 Bad Request", "{}");
            }
            let n = serve_stamped.fetch_add(1, Ordering::SeqCst);
            let (query, reply) = (serve_dir.join(format!("q{n}.tsq")), serve_dir.join(format!("r{n}.tsr")));
            std::fs::write(&query, &received.body).unwrap();
            let output = Command::new("openssl")
                .current_dir(&serve_dir)
                .args(["ts", "-reply", "-config", "tsa.cnf", "-queryfile"])
                .arg(&query)
                .arg("-out")
                .arg(&reply)
                .output()
                .expect("openssl runs");
            if !output.status.success() {
                return Reply::json("500 Internal Server Error", String::from_utf8_lossy(&output.stderr).into_owned());
            }
            Reply::json("200 OK", std::fs::read(&reply).unwrap()).header("Content-Type", "application/timestamp-reply")
        });
        Tsa { dir, url, down, stamped }
    }

    /// The root CA certificate an auditor trusts.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// The same TSA behind HTTPS that requires a client certificate: Python's `http.server` with
/// an `ssl` context (`CERT_REQUIRED`) in front of `openssl ts -reply`. Its server certificate
/// (for `127.0.0.1`) and a client certificate (`client.pem`, `client.key`) are issued by the
/// TSA's root.
pub struct HttpsTsa {
    pub tsa: Tsa,
    pub url: String,
    child: std::process::Child,
}

impl Drop for HttpsTsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HTTPS_SERVER: &str = r#"
import http.server, os, ssl, subprocess, sys
d = sys.argv[1]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        query, reply = os.path.join(d, "https.tsq"), os.path.join(d, "https.tsr")
        open(query, "wb").write(body)
        subprocess.run(["openssl", "ts", "-reply", "-config", "tsa.cnf", "-queryfile", query, "-out", reply],
                       cwd=d, check=True, capture_output=True)
        data = open(reply, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
context.verify_mode = ssl.CERT_REQUIRED
context.load_verify_locations(os.path.join(d, "ca.pem"))
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl HttpsTsa {
    pub fn start() -> HttpsTsa {
        use std::io::BufRead;
        let tsa = Tsa::start();
        let d = tsa.dir.path().to_path_buf();
        std::fs::write(d.join("server.ext"), "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n").unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
        for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
            let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
            let subject = format!("/CN=sv0 test {name}");
            openssl(&d, &[&["req"][..], &EC_P256_KEY, &["-keyout", &key, "-out", &csr, "-subj", &subject]].concat());
            openssl(
                &d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "30",
                    "-extfile",
                    ext,
                    "-out",
                    &pem,
                ],
            );
        }
        std::fs::write(d.join("https_tsa.py"), HTTPS_SERVER).unwrap();
        let mut child = Command::new("python3")
            .arg(d.join("https_tsa.py"))
            .arg(&d)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the HTTPS TSA did not start: {line:?}"));
        HttpsTsa { url: format!("https://127.0.0.1:{port}/tsr"), tsa, child }
    }
}
