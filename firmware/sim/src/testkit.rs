//! Test support (feature `testkit`): a throwaway Mosquitto broker on a free loopback port.
//!
//! [`Mosquitto::start`] writes a config into a temporary directory and starts
//! `/usr/sbin/mosquitto` (or `mosquitto` from `PATH`) with it:
//!
//! ```text
//! listener {port} 127.0.0.1
//! allow_anonymous true
//! max_queued_messages 0     # never drop queued QoS 1 messages (FIELD-NOTES, SPEC §3)
//! persistence false
//! ```
//!
//! and waits until the port accepts connections. Dropping the guard kills the broker, so a
//! failing test never leaves one behind. [`Mosquitto::stop`] and [`Mosquitto::restart`] (same
//! port) simulate a broker outage. Tests that may run where Mosquitto is not installed check
//! [`Mosquitto::binary`] first and skip with a message.
//!
//! [`Proxy`] is a TCP relay in front of the broker whose [`Proxy::cut`] drops every connection
//! through it and refuses new ones until [`Proxy::restore`]: a device's network outage (its
//! Wi-Fi drops) while the broker, the gateway and any observer stay connected.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a starting broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Mosquitto broker (killed on drop).
#[derive(Debug)]
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Mosquitto {
    /// The broker binary: `/usr/sbin/mosquitto`, else `mosquitto` on `PATH`.
    pub fn binary() -> Option<PathBuf> {
        let system = PathBuf::from("/usr/sbin/mosquitto");
        if system.is_file() {
            return Some(system);
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("mosquitto"))
                .find(|p| p.is_file())
        })
    }

    /// Starts a broker on a free loopback port.
    pub fn start() -> io::Result<Mosquitto> {
        let binary = Mosquitto::binary()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "mosquitto is not installed"))?;
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             max_queued_messages 0\n\
             persistence false\n\
             log_dest file {}\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n",
            dir.path().join("mosquitto.log").display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf)?;
        let mut broker = Mosquitto {
            child: None,
            port,
            dir,
            binary,
        };
        broker.spawn()?;
        Ok(broker)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The broker's log so far (for test failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Kills the broker (an outage). Sessions and retained messages are lost
    /// (`persistence false`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let conf = self.dir.path().join("mosquitto.conf");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        self.wait_ready(&conf)
    }

    fn wait_ready(&mut self, conf: &Path) -> io::Result<()> {
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "mosquitto -c {} exited with {status}: {}",
                    conf.display(),
                    self.log()
                )));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "mosquitto did not listen on port {} within {START_TIMEOUT:?}",
                        self.port
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nothing listens on now (the OS's choice).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A TCP relay from a loopback port to `127.0.0.1:{target}` that can cut its connections.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    shared: Arc<ProxyShared>,
}

#[derive(Debug, Default)]
struct ProxyShared {
    down: AtomicBool,
    closing: AtomicBool,
    sockets: Mutex<Vec<TcpStream>>,
}

impl ProxyShared {
    fn cut_all(&self) {
        let mut sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        for s in sockets.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    /// Relays a new loopback port to `target`.
    pub fn start(target: u16) -> io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(ProxyShared::default());
        let accept = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept.closing.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if accept.down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let clones = (
                    client.try_clone(),
                    upstream.try_clone(),
                    client.try_clone(),
                    upstream.try_clone(),
                );
                let (Ok(c1), Ok(u1), Ok(c2), Ok(u2)) = clones else {
                    continue;
                };
                accept
                    .sockets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend([client, upstream]);
                std::thread::spawn(move || pipe(c1, u1));
                std::thread::spawn(move || pipe(u2, c2));
            }
        });
        Ok(Proxy { port, shared })
    }

    /// The port to connect to instead of the target's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The outage starts: every relayed connection is dropped, new ones are refused.
    pub fn cut(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.cut_all();
    }

    /// The outage ends: new connections are relayed again.
    pub fn restore(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.cut_all();
        // Wake the accept loop so it sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` until either side closes, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
