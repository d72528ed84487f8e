//! Real `nats-server` processes for tests: one JetStream server, or a three-node JetStream
//! cluster, on free loopback ports with a temporary store. Only processes started here are
//! ever stopped, and they are stopped when their handle is dropped, also when a test panics.
//!
//! The binary is `$SV0_NATS_SERVER` (set by `ops/test.sh`, which installs the pinned version).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// The nats-server binary the tests use.
pub fn nats_server_binary() -> PathBuf {
    match std::env::var_os("SV0_NATS_SERVER") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "SV0_NATS_SERVER is not set: run the suite with ./ops/test.sh, which installs the pinned \
             nats-server, or set SV0_NATS_SERVER to a nats-server binary"
        ),
    }
}

/// Whether the binary is a 2.9 server (Debian's), which needs `ops/nats/single-2.9.conf`.
fn server_is_2_9() -> bool {
    static IS_2_9: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IS_2_9.get_or_init(|| {
        Command::new(nats_server_binary())
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("v2.9."))
            .unwrap_or(false)
    })
}

/// How many times a server (or cluster) is started on new ports when another process took one
/// of them between `free_port` and the server's bind.
const PORT_ATTEMPTS: usize = 5;

/// Whether a server failed because a port it was given was taken in the meantime.
fn lost_port_race(error: &str) -> bool {
    error.contains("address already in use")
}

/// A free TCP port on the loopback interface (free when asked: a server given it may still lose
/// it to another process before it binds, which `lost_port_race` recognises).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// One nats-server process with JetStream.
pub struct NatsServer {
    name: String,
    /// Client port.
    pub port: u16,
    monitor_port: u16,
    cluster: Option<(u16, Vec<u16>)>,
    /// Runs `ops/nats/permissions.conf` (a user per process) instead of `single.conf`.
    permissions: bool,
    dir: TempDir,
    child: Option<Child>,
}

/// The password of each user of `ops/nats/permissions.conf` in the tests: the user's name
/// twice.
pub fn test_password(user: &str) -> String {
    format!("{user}-{user}")
}

impl NatsServer {
    /// Starts a single JetStream server and waits until it is healthy.
    pub fn start() -> NatsServer {
        NatsServer::start_single(false)
    }

    /// Starts a single JetStream server with a user per SV0 process (`ops/nats/permissions.conf`,
    /// passwords from `test_password`).
    pub fn start_with_permissions() -> NatsServer {
        NatsServer::start_single(true)
    }

    fn start_single(permissions: bool) -> NatsServer {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut server = NatsServer::new("n1", None);
            server.permissions = permissions;
            server.launch();
            match server.healthy() {
                Ok(()) => return server,
                Err(e) if lost_port_race(&e) && attempt < PORT_ATTEMPTS => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn new(name: &str, cluster: Option<(u16, Vec<u16>)>) -> NatsServer {
        NatsServer {
            name: name.to_string(),
            port: free_port(),
            monitor_port: free_port(),
            cluster,
            permissions: false,
            dir: TempDir::new(),
            child: None,
        }
    }

    /// The server's name (`n1`, `n2`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The configuration file of `ops/nats/` this server runs, and its variables.
    fn config(&self) -> (PathBuf, Vec<(&'static str, String)>) {
        let ops = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ops/nats");
        let mut vars = vec![
            ("SV0_NATS_NAME", self.name.clone()),
            ("SV0_NATS_LISTEN", format!("127.0.0.1:{}", self.port)),
            ("SV0_NATS_MONITOR", format!("127.0.0.1:{}", self.monitor_port)),
            ("SV0_NATS_STORE", self.dir.join("jetstream").display().to_string()),
        ];
        let file = match &self.cluster {
            Some((listen, routes)) => {
                vars.push(("SV0_NATS_CLUSTER", format!("127.0.0.1:{listen}")));
                vars.push(("SV0_NATS_ROUTE_A", format!("nats-route://127.0.0.1:{}", routes[0])));
                vars.push(("SV0_NATS_ROUTE_B", format!("nats-route://127.0.0.1:{}", routes[1])));
                ops.join("cluster.conf")
            }
            None if self.permissions => {
                for (var, user) in [
                    ("SV0_NATS_PASS_ADMIN", "admin"),
                    ("SV0_NATS_PASS_COLLECTOR", "collector"),
                    ("SV0_NATS_PASS_SIGNER", "signer"),
                    ("SV0_NATS_PASS_PROJECTOR", "projector"),
                    ("SV0_NATS_PASS_API", "api"),
                    ("SV0_NATS_PASS_SOC", "soc"),
                ] {
                    vars.push((var, test_password(user)));
                }
                ops.join("permissions.conf")
            }
            None if server_is_2_9() => ops.join("single-2.9.conf"),
            None => ops.join("single.conf"),
        };
        (file, vars)
    }

    fn launch(&mut self) {
        let (config, vars) = self.config();
        let log = std::fs::File::create(self.dir.join("nats.log")).expect("create nats.log");
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&config)
            .envs(vars)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", nats_server_binary().display()));
        self.child = Some(child);
    }

    /// Waits until the monitoring endpoint reports the server healthy.
    pub fn wait_healthy(&mut self) {
        if let Err(e) = self.healthy() {
            panic!("{e}");
        }
    }

    /// Waits until the monitoring endpoint reports the server healthy, or says why not.
    fn healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("nats-server {} exited with {status}: {}", self.name, self.log_tail()));
            }
            if http_status(self.monitor_port, "/healthz") == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("nats-server {} not healthy after 30 s: {}", self.name, self.log_tail()))
    }

    /// Waits until the server accepts TCP connections (a cluster member may be healthy only
    /// once a quorum is up).
    pub fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server {} is not listening after 30 s", self.name);
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Kills the process at once (SIGKILL), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same ports and store.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Whether the process is running.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three JetStream servers in one cluster.
pub struct NatsCluster {
    /// The servers.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three servers routed to each other and waits until all are healthy.
    pub fn start() -> NatsCluster {
        let mut attempt = 0;
        'attempt: loop {
            attempt += 1;
            let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
            let mut servers: Vec<NatsServer> = (0..3)
                .map(|n| {
                    let routes = cluster_ports.iter().enumerate().filter(|(m, _)| *m != n).map(|(_, p)| *p).collect();
                    NatsServer::new(&format!("n{}", n + 1), Some((cluster_ports[n], routes)))
                })
                .collect();
            for server in &mut servers {
                server.launch();
            }
            for server in &mut servers {
                match server.healthy() {
                    Ok(()) => {}
                    // The whole cluster starts again on new ports: the members' routes name
                    // each other's.
                    Err(e) if lost_port_race(&e) && attempt < PORT_ATTEMPTS => continue 'attempt,
                    Err(e) => panic!("{e}"),
                }
            }
            let cluster = NatsCluster { servers };
            cluster.wait_meta_leader();
            return cluster;
        }
    }

    /// Waits until every member names the JetStream meta leader: healthy members of a cluster
    /// still time out stream requests until the meta group has elected one, which on a loaded
    /// 2-core machine can take seconds after the last member reports healthy.
    pub fn wait_meta_leader(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for server in &self.servers {
            loop {
                let body = http_body(server.monitor_port, "/jsz").unwrap_or_default();
                if names_meta_leader(&body) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "nats-server {} names no JetStream meta leader after 60 s: {}",
                    server.name,
                    server.log_tail()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `nats://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.servers.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("nats://{}", hosts.join(","))
    }
}

/// Whether a `/jsz` document's `meta_cluster` names a leader (`"leader": "n2"`).
fn names_meta_leader(jsz: &str) -> bool {
    let Some(meta) = jsz.find("\"meta_cluster\"").map(|i| &jsz[i..]) else { return false };
    let Some(after) = meta.find("\"leader\"").map(|i| &meta[i + "\"leader\"".len()..]) else { return false };
    let value = after.trim_start().trim_start_matches(':').trim_start();
    value.starts_with('"') && !value[1..].starts_with('"')
}

/// The body of a GET on the loopback monitoring port, if it answers.
fn http_body(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// The HTTP status of a GET on the loopback monitoring port, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}
