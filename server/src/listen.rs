//! The listening socket: binding `bind` × `port` at start-up and again when
//! `CONFIG SET port` or `CONFIG SET bind` changes them (Redis's
//! `changeListenPort` / `changeBindAddr`). A new socket is bound before the
//! change is accepted, so a port in use fails the `CONFIG SET` and leaves
//! every parameter as it was; the accept loop then swaps it in and closes
//! the old one.

use parking_lot::Mutex;
use std::io;
use std::net::TcpListener;
use tokio::sync::Notify;

/// Binds the first usable address of `bind` on `port` (0: any free port).
///
/// Redis binds every listed address; we serve the first that works (a
/// leading '-' marks an address that may be unavailable). As in Redis's
/// `listenToPort`, an address this host lacks is skipped, but a port
/// already in use is an error: serving only some address would leave
/// clients of the busy one talking to another server. The socket is
/// non-blocking, ready for tokio.
pub fn bind(bind: &[String], port: u16) -> io::Result<TcpListener> {
    let mut last_err = None;
    for b in bind {
        let optional = b.starts_with('-');
        let host = b.trim_start_matches('-');
        let host = if host == "*" { "0.0.0.0" } else { host };
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match TcpListener::bind(&addr) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(l);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(e),
            Err(e) => {
                if !optional {
                    last_err = Some(e);
                }
            }
        }
    }
    Err(last_err
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no bind address")))
}

/// A socket bound by `CONFIG SET`, waiting for the accept loop to take it.
#[derive(Default)]
pub struct Rebind {
    next: Mutex<Option<TcpListener>>,
    ready: Notify,
}

impl Rebind {
    /// Hands over a newly bound socket; one handed over earlier and not yet
    /// taken is closed (the later `CONFIG SET` wins).
    pub fn offer(&self, l: TcpListener) {
        *self.next.lock() = Some(l);
        self.ready.notify_one();
    }

    /// Waits for a socket handed over by [`Rebind::offer`].
    pub async fn next(&self) -> TcpListener {
        loop {
            if let Some(l) = self.next.lock().take() {
                return l;
            }
            self.ready.notified().await;
        }
    }
}
